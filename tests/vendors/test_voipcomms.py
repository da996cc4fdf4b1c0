"""VoIP Communications: every example of the manual (seeds/003), every documented code and word."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from dispatcher.errors import (
    RequestNotSent,
    VendorAccountError,
    VendorOutcomeUnknown,
    VendorRejectedRequest,
    VendorRetryable,
)
from dispatcher.vendors import voipcomms
from dispatcher.vendors.base import Account, DeliveryState, Inbound, Outcome, StatusReport
from tests.manuals.voipcomms import DELIVERY_DATE, FROM, SEND_LOG, SMSID, TEXT, TO
from tests.vendors.runner import Exchange, QueryCase, SendCase, run_query_case, run_send_case

ACCOUNT = Account(
    key="us-main",
    vendor="voipcomms",
    base_url="https://voip-communications.net",
    country="US",
    params={"api_key": "AK4821f0c9", "api_password": "pw-7Hq2-zX9v-Lm3k"},
    secret_fields=frozenset({"api_password"}),
)
# base64 of "AK4821f0c9:pw-7Hq2-zX9v-Lm3k", written out so the test does not share the adapter's code.
AUTH = {"Authorization": "Basic QUs0ODIxZjBjOTpwdy03SHEyLXpYOXYtTG0zaw=="}
SEND = "/api-v2/index.php/sms/send"
SUMMARY = "/api-v2/index.php/sms/summary"
CHAT = "/api-v2/index.php/sms/chat"
MANUAL_REPLY = SEND_LOG

A, R, X, P, U = Outcome.ACCEPTED, Outcome.RETRY, Outcome.REJECTED, Outcome.PAUSE_ACCOUNT, Outcome.UNKNOWN


def sent(to: str, text: str = TEXT, body: str = "", status: int = 200, **extra: str) -> Exchange:
    """The form POST sms/send must be, and the reply it gets."""
    form = {"to": to, "msg": text, **extra}
    return Exchange("POST", SEND, form=form, headers=AUTH, body=body, status=status)


def entry(to: str, code: Any = 200, smsid: str | None = None, **extra: Any) -> dict[str, Any]:
    """One send_log entry shaped like the manual's."""
    return {"code": code, "code_desc": "", "to": to, "type": "BULKSMS", "smsid": smsid, **extra}


def send_log(*entries: dict[str, Any]) -> str:
    return json.dumps({"send_log": list(entries)})


SEND_CASES = [
    SendCase(
        "manual: PHP example with from and delivery_date, the manual's reply",
        [("+" + TO, TEXT)],
        [sent(TO, body=MANUAL_REPLY, **{"from": FROM, "delivery_date": DELIVERY_DATE})],
        [(A, SMSID, "200")],
        options={"from": "+" + FROM, "delivery_date": DELIVERY_DATE},
    ),
    SendCase(
        "manual: curl example, to and msg only (bulk)",
        [("+" + TO, TEXT)],
        [sent(TO, body=MANUAL_REPLY)],
        [(A, SMSID, "200")],
    ),
    SendCase(
        "three numbers in one comma list; the send_log is matched by number, not by order",
        [("+12812345678", TEXT), ("+5215512345678", TEXT), ("+447700900123", TEXT)],
        [
            sent(
                "12812345678,5215512345678,447700900123",
                body=send_log(
                    entry("447700900123", smsid="c3"),
                    entry("12812345678", smsid="a1"),
                    entry("5215512345678", smsid="b2"),
                ),
            )
        ],
        [(A, "a1", "200"), (A, "b2", "200"), (A, "c3", "200")],
    ),
    SendCase(
        "a code given as text is read the same",
        [("+12812345678", TEXT)],
        [sent("12812345678", body=send_log(entry("12812345678", code="200", smsid="s1")))],
        [(A, "s1", "200")],
    ),
    SendCase(
        "a long text logged as two parts: accepted under the first part's id",
        [("+12812345678", "x" * 200)],
        [
            sent(
                "12812345678",
                "x" * 200,
                body=send_log(entry("12812345678", smsid="p1"), entry("12812345678", smsid="p2")),
            )
        ],
        [(A, "p1", "200")],
    ),
    SendCase(
        "a part with an undocumented code decides the number: unknown, as its other part went out",
        [("+12812345678", "x" * 200)],
        [
            sent(
                "12812345678",
                "x" * 200,
                body=send_log(entry("12812345678", smsid="p1"), entry("12812345678", code=503)),
            )
        ],
        [(U, None, "503")],
    ),
    SendCase(
        "a number the send_log does not mention is unknown, never sent again blindly",
        [("+12812345678", TEXT), ("+12812345679", TEXT)],
        [sent("12812345678,12812345679", body=send_log(entry("12812345678", smsid="a1")))],
        [(A, "a1", "200"), (U, None, None)],
    ),
    SendCase(
        "one part sent and one refused (401) leaves the number unknown: resending repeats the sent part",
        [("+12812345678", "x" * 200)],
        [
            sent(
                "12812345678",
                "x" * 200,
                body=send_log(entry("12812345678", smsid="p1"), entry("12812345678", code=401)),
            )
        ],
        [(U, None, "401")],
    ),
    SendCase(
        "an entry without a code is unknown",
        [("+12812345678", TEXT)],
        [sent("12812345678", body=send_log({"to": "12812345678", "status": "SCHEDULED"}))],
        [(U, None, None)],
    ),
    SendCase(
        "an undocumented code is kept raw and unknown, never resent: the vendor may have sent it",
        [("+12812345678", TEXT)],
        [sent("12812345678", body=send_log(entry("12812345678", code=400, code_desc="Invalid number")))],
        [(U, None, "400")],
    ),
    SendCase(
        "error: false with a send_log is a normal reply",
        [("+12812345678", TEXT)],
        [
            sent(
                "12812345678",
                body=json.dumps({"error": False, "send_log": [entry("12812345678", smsid="k")]}),
            )
        ],
        [(A, "k", "200")],
    ),
    SendCase(
        "personalised texts: one request per distinct text",
        [("+12812345678", "Hi Ann"), ("+12812345679", "Hi Bob"), ("+12812345670", "Hi Ann")],
        [
            sent(
                "12812345678,12812345670",
                "Hi Ann",
                body=send_log(entry("12812345678", smsid="1"), entry("12812345670", smsid="3")),
            ),
            sent("12812345679", "Hi Bob", body=send_log(entry("12812345679", smsid="2"))),
        ],
        [(A, "1", "200"), (A, "2", "200"), (A, "3", "200")],
    ),
    SendCase(
        "HTTP 401: invalid api credentials pause the account",
        [("+12812345678", TEXT)],
        [sent("12812345678", status=401, body='{"error": true, "error_message": "Invalid credentials"}')],
        error=VendorAccountError,
    ),
    SendCase(
        "HTTP 500 is retryable",
        [("+12812345678", TEXT)],
        [sent("12812345678", status=500)],
        error=VendorRetryable,
    ),
    SendCase(
        "HTTP 404 is refused for good",
        [("+12812345678", TEXT)],
        [sent("12812345678", status=404)],
        error=VendorRejectedRequest,
    ),
    SendCase(
        "an HTML error page is retryable, never a success",
        [("+12812345678", TEXT)],
        [sent("12812345678", body="<html><body>502 Bad Gateway</body></html>")],
        error=VendorRetryable,
    ),
    SendCase(
        "JSON without a send_log is retryable",
        [("+12812345678", TEXT)],
        [sent("12812345678", body='{"result": "ok"}')],
        error=VendorRetryable,
    ),
    SendCase(
        "an empty send_log is retryable",
        [("+12812345678", TEXT)],
        [sent("12812345678", body='{"send_log": []}')],
        error=VendorRetryable,
    ),
    SendCase(
        "a JSON list instead of an object is retryable",
        [("+12812345678", TEXT)],
        [sent("12812345678", body="[]")],
        error=VendorRetryable,
    ),
    SendCase(
        "a connect error means not sent",
        [("+12812345678", TEXT)],
        [Exchange("POST", SEND, raises=httpx.ConnectError)],
        error=RequestNotSent,
    ),
    SendCase(
        "a read timeout means the outcome is unknown",
        [("+12812345678", TEXT)],
        [Exchange("POST", SEND, raises=httpx.ReadTimeout)],
        error=VendorOutcomeUnknown,
    ),
]

# Every documented code on its own: the send_log codes (the manual's 200, its HTTP 401) and the
# refusal the vendor's app reads ({"error": true, "error_message": ...}).
DOCUMENTED = {"200": A, "401": P, "error": R}
SEND_CASES += [
    SendCase(
        f"code {code}: {voipcomms.codes[code].meaning}",
        [("+12812345678", TEXT), ("+12812345679", TEXT)],
        [
            sent(
                "12812345678,12812345679",
                body=send_log(entry("12812345678", code=int(code)), entry("12812345679", code=int(code))),
            )
        ],
        [(outcome, None, code)] * 2,
    )
    for code, outcome in DOCUMENTED.items()
    if code.isdigit()
]
SEND_CASES.append(
    SendCase(
        "error: the refusal answers for every number, its error_message kept",
        [("+12812345678", TEXT), ("+12812345679", TEXT)],
        [sent("12812345678,12812345679", body='{"error": true, "error_message": "Not enough balance"}')],
        [(R, None, "error"), (R, None, "error")],
    )
)


def summary(*rows: dict[str, Any]) -> str:
    return json.dumps({"summary": list(rows)})


def row(sms_id: str, status: str, inout: str = "OUT", **extra: Any) -> dict[str, Any]:
    """A sent-log row with the fields the vendor's app reads."""
    return {
        "sms_id": sms_id,
        "sms_country": "US",
        "sms_status": status,
        "sms_external": "12812345678",
        "sms_sale": "0.01",
        "sms_status_date": "2019-10-01 00:00:00",
        "sms_msg": TEXT,
        "sms_inout": inout,
        **extra,
    }


def polled(path: str, body: str, status: int = 200, **form: str) -> Exchange:
    return Exchange("POST", path, form=form, headers=AUTH, body=body, status=status)


USUAL = ("QUEUED", "PENDING", "SENT", "DELIVERED", "FAILED", "UNDELIVERED", "REJECTED", "EXPIRED")
SCHEDULED = StatusReport("4711", DeliveryState.QUEUED, "SCHEDULED", "+12812345678", "2019-10-01 00:00:00")
STATUS_CASES = [
    QueryCase(
        "a page of the sent log: SCHEDULED is queued; IN rows and undocumented words are left out",
        [0],
        [
            polled(
                SUMMARY,
                summary(row("4711", "SCHEDULED"), row("4712", "SCHEDULED", "IN"), row("4713", "ENROUTE")),
                page="0",
            )
        ],
        [SCHEDULED],
    ),
    QueryCase(
        "the send reply's smsid is the id when a row carries it",
        [3],
        [polled(SUMMARY, summary(row("4711", "scheduled", smsid="2017559ea27008c6b7122900621")), page="3")],
        [
            StatusReport(
                "2017559ea27008c6b7122900621",
                DeliveryState.QUEUED,
                "SCHEDULED",
                "+12812345678",
                "2019-10-01 00:00:00",
            )
        ],
    ),
    QueryCase(
        "the usual words beyond the manual's SCHEDULED move a message on",
        [1],
        [polled(SUMMARY, summary(*(row(str(i), w) for i, w in enumerate(USUAL))), page="1")],
        [
            StatusReport(str(i), voipcomms.status_codes[w], w, "+12812345678", "2019-10-01 00:00:00")
            for i, w in enumerate(USUAL)
        ],
    ),
    QueryCase("an empty page ends the paging", [7], [polled(SUMMARY, summary(), page="7")], []),
    QueryCase(
        "a refusal is retryable",
        [0],
        [polled(SUMMARY, '{"error": true, "error_message": "Try later"}', page="0")],
        error=VendorRetryable,
    ),
    QueryCase("HTTP 401 pauses", [0], [polled(SUMMARY, "", 401, page="0")], error=VendorAccountError),
    QueryCase("not JSON", [0], [polled(SUMMARY, "<html></html>", page="0")], error=VendorRetryable),
    QueryCase("no summary list", [0], [polled(SUMMARY, '{"chat": []}', page="0")], error=VendorRetryable),
]

REPLY = Inbound("+12812345678", "STOP", "88", "17134567890", "2019-10-02 09:15:00")
MO_CASES = [
    QueryCase(
        "a chat page: the IN rows are replies, OUT rows are ours",
        [0, "+17134567890", "+12812345678"],
        [
            polled(
                CHAT,
                json.dumps(
                    {
                        "chat": [
                            row("87", "SENT", "OUT", sms_internal="17134567890"),
                            row(
                                "88",
                                "RECEIVED",
                                "IN",
                                sms_msg="STOP",
                                sms_internal="17134567890",
                                sms_status_date="2019-10-02 09:15:00",
                            ),
                        ]
                    }
                ),
                internal="17134567890",
                external="12812345678",
                page="0",
            )
        ],
        [REPLY],
    ),
    QueryCase("an empty page ends the paging", [2], [polled(CHAT, '{"chat": []}', page="2")], []),
    QueryCase(
        "a row without its text is retryable",
        [0],
        [
            polled(
                CHAT,
                json.dumps({"chat": [{"sms_id": "9", "sms_inout": "IN", "sms_external": "1"}]}),
                page="0",
            )
        ],
        error=VendorRetryable,
    ),
    QueryCase(
        "a refusal is retryable",
        [0],
        [polled(CHAT, '{"error": 1, "error_message": "No such chat"}', page="0")],
        error=VendorRetryable,
    ),
    QueryCase("HTTP 401 pauses", [0], [polled(CHAT, "", 401, page="0")], error=VendorAccountError),
    QueryCase("not JSON", [0], [polled(CHAT, "Service Unavailable", page="0")], error=VendorRetryable),
]


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: SendCase, caplog: pytest.LogCaptureFixture) -> None:
    run_send_case(voipcomms, ACCOUNT, case, caplog)


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, voipcomms.build_status, voipcomms.parse_status, case, caplog)


@pytest.mark.parametrize("case", MO_CASES, ids=lambda c: c.label)
def test_replies(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, voipcomms.build_replies, voipcomms.parse_replies, case, caplog)


def test_every_documented_code_has_a_case() -> None:
    assert set(DOCUMENTED) == set(voipcomms.codes)
    seen = {code for case in SEND_CASES for (_, _, code) in case.outcomes}
    assert set(voipcomms.codes) <= seen


def test_every_status_word_has_a_case() -> None:
    seen = {report.code for case in STATUS_CASES for report in case.expected or []}
    assert seen == set(voipcomms.status_codes)


def test_a_chat_row_without_the_number_takes_the_one_asked_for() -> None:
    # Given a chat row that does not repeat the external number
    body = json.dumps({"chat": [{"sms_id": 5, "sms_msg": "yes", "sms_inout": "IN"}]})
    # When it is parsed for the conversation with that number
    replies = voipcomms.parse_replies(httpx.Response(200, content=body.encode()), external="+12812345678")
    # Then the reply is from that number
    assert replies == [Inbound("+12812345678", "yes", "5")]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"from": "Acme"}, "from"),
        ({"from": "123"}, "from"),
        ({"delivery_date": "tomorrow"}, "delivery_date"),
        ({"delivery_date": "2019-13-01 00:00"}, "delivery_date"),
        ({"delivery_date": 20191001}, "delivery_date"),
        ({"carrier": "x"}, "carrier"),
    ],
)
def test_bad_options_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        voipcomms.validate_options(options)


def test_options_are_normalised() -> None:
    checked = voipcomms.validate_options({"from": "+17134567890", "delivery_date": "2010-01-01 13:15"})
    assert checked == {"from": "17134567890", "delivery_date": "2010-01-01 13:15"}
    assert voipcomms.validate_options({"from": "", "delivery_date": None}) == {}


def test_text_limit_is_six_parts() -> None:
    assert voipcomms.text_limit("plain text", {}) == 918
    assert voipcomms.text_limit("emoji 🙂", {}) == 402
    assert voipcomms.limits.max_text_chars == 918


def test_a_reply_pushed_to_the_number_callback_is_read() -> None:
    form = {"from": "12812345678", "to": "17134567890", "msg": "STOP", "date": "2019-10-01 00:05:00"}
    assert voipcomms.parse_push(form) == [
        Inbound("+12812345678", "STOP", to="17134567890", at="2019-10-01 00:05:00")
    ]
    with pytest.raises(ValueError, match="'from' digits"):
        voipcomms.parse_push({"msg": "hi"})
