"""Ogangi: every example of the manual (seeds/004), every documented status word, the signature."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import httpx
import pytest

from dispatcher.errors import (
    ConfigError,
    RequestNotSent,
    VendorAccountError,
    VendorOutcomeUnknown,
    VendorRejectedRequest,
    VendorRetryable,
)
from dispatcher.vendors import ogangi
from dispatcher.vendors.base import Account, DeliveryState, Inbound, Outcome, Outgoing, Recipient, StatusReport
from tests.manuals.ogangi import FIRE_TEXT, PIN_TEXT, PRIVATE_KEY, SEND_SMS_CALL, SIGNATURE_EXAMPLE, TEXT
from tests.vendors.runner import Exchange, QueryCase, SendCase, run_query_case, run_send_case

FIXTURES = Path(__file__).parent / "fixtures" / "ogangi"
ACCOUNT = Account(
    key="ve-main",
    vendor="ogangi",
    base_url="https://www.messangi.com/messangi_mmc",
    country="VE",
    params={
        "instance_id": "8",
        "public_key": "d1F2T3Y4N56",
        "private_key": PRIVATE_KEY,
        "from": "19893653744",
    },
    secret_fields=frozenset({"private_key"}),
)
API = "/messangi_mmc/rest/api/"
SEND_SMS_REPLY = (FIXTURES / "sendSMS.xml").read_text()
SEND_MT_REPLY = (FIXTURES / "sendMT.xml").read_text()
SEND_SMS_PATH = API + SEND_SMS_CALL  # the manual's sendSMS call, signed by hand
SEND_MT_PATH = (
    API + "sendMT/8/19893653744/null/13056708084/T0dBTkdJIFRFU1QgTUVTU0FHRQ==/d1F2T3Y4N56/"
    "7ef6b8b67d6316c4054ae8a6906fd2b31a3e282183f80e134a750b5a2b1841fb"
)
SEND_MT_FLAGS_PATH = (
    API + "sendMT/8/19893653744/null/13056708084/T0dBTkdJIFRFU1QgTUVTU0FHRQ==/urgent/d1F2T3Y4N56/"
    "16ad830d5aa4e2382ff0494afc517ffc58e91185d3db279bb1a58afb7451e495"
)

A, R, X, P, U = Outcome.ACCEPTED, Outcome.RETRY, Outcome.REJECTED, Outcome.PAUSE_ACCOUNT, Outcome.UNKNOWN


def signed_path(method: str, *values: str) -> str:
    """The path a call must have, signed here with hmac so the test does not reuse the adapter's code."""
    message = "/".join(("8", *values))
    signature = hmac.new(PRIVATE_KEY.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"{API}{method}/{message}/d1F2T3Y4N56/{signature}"


def envelope(status: str, description: str = "", result: str = "", method: str = "sendSMS") -> str:
    return f"<input>{method}</input> <status>{status}</status> <description>{description}</description>{result}"


def with_message_status(word: str) -> str:
    """The manual's sendSMS reply with another status word for the message."""
    return SEND_SMS_REPLY.replace("<status>SENT_TO_CARRIER</status>", f"<status>{word}</status>")


def manual_send(body: str = SEND_SMS_REPLY, status: int = 200) -> Exchange:
    return Exchange("GET", SEND_SMS_PATH, body=body, status=status)


MANUAL_TO = [("+13056708084", TEXT)]
CARRIER = {"carrier": "carrierName"}

SEND_CASES = [
    SendCase(
        "manual: tools/sendSMS, the manual's reply (a negative long id)",
        MANUAL_TO,
        [manual_send()],
        [(A, "-8174720676710228700", "SENT_TO_CARRIER")],
        options=CARRIER,
    ),
    SendCase(
        "manual: sendMT, mobile in plain digits, carrier null; the bare envelope accepts",
        MANUAL_TO,
        [Exchange("GET", SEND_MT_PATH, body=SEND_MT_REPLY)],
        [(A, None, "OK")],
        options={"method": "sendMT"},
    ),
    SendCase(
        "manual: sendMT with flags",
        MANUAL_TO,
        [Exchange("GET", SEND_MT_FLAGS_PATH, body=SEND_MT_REPLY)],
        [(A, None, "OK")],
        options={"method": "sendMT", "flags": "urgent"},
    ),
    SendCase(
        "the envelope inside a root element, after an XML declaration",
        MANUAL_TO,
        [manual_send(f'<?xml version="1.0" encoding="UTF-8"?>\n<response>{SEND_SMS_REPLY}</response>')],
        [(A, "-8174720676710228700", "SENT_TO_CARRIER")],
        options=CARRIER,
    ),
    SendCase(
        "text and number in URL-safe base64, padding kept; no carrier reads null; a job's from",
        [("+584121234567", "¿Sí? ñandú ~~>>")],
        [
            Exchange(
                "GET",
                signed_path("tools/sendSMS", "null", "4242", "NTg0MTIxMjM0NTY3", "wr9Tw60_IMOxYW5kw7ogfn4-Pg=="),
                body=SEND_SMS_REPLY,
            )
        ],
        [(A, "-8174720676710228700", "SENT_TO_CARRIER")],
        options={"from": "+4242"},
    ),
    SendCase(
        "one request per recipient",
        [("+13056708084", "Hola"), ("+13056708085", "Hola")],
        [
            Exchange(
                "GET",
                signed_path("tools/sendSMS", "null", "19893653744", "MTMwNTY3MDgwODQ=", "SG9sYQ=="),
                body=SEND_SMS_REPLY,
            ),
            Exchange(
                "GET",
                signed_path("tools/sendSMS", "null", "19893653744", "MTMwNTY3MDgwODU=", "SG9sYQ=="),
                body=SEND_SMS_REPLY.replace("-8174720676710228700", "42"),
            ),
        ],
        [(A, "-8174720676710228700", "SENT_TO_CARRIER"), (A, "42", "SENT_TO_CARRIER")],
    ),
    SendCase(
        "BAD_SIGNATURE: bad keys pause the account",
        MANUAL_TO,
        [manual_send(envelope("BAD_SIGNATURE", "Invalid signature, access denied"))],
        [(P, None, "BAD_SIGNATURE")],
        options=CARRIER,
    ),
    SendCase(
        "ERROR: an internal error is retried within the attempt budget",
        MANUAL_TO,
        [manual_send(envelope("ERROR", "Internal error, please report this to support@messangi.com"))],
        [(R, None, "ERROR")],
        options=CARRIER,
    ),
    SendCase(
        "an undocumented envelope status is kept raw and retried",
        MANUAL_TO,
        [manual_send(envelope("DENIED"))],
        [(R, None, "DENIED")],
        options=CARRIER,
    ),
    SendCase(
        "an undocumented message status is kept raw and retried",
        MANUAL_TO,
        [manual_send(with_message_status("QUEUE"))],
        [(R, None, "QUEUE")],
        options=CARRIER,
    ),
    SendCase(
        "OK without a message id: unknown, never sent again blindly",
        MANUAL_TO,
        [manual_send(envelope("OK", "Completed", "<result><messages/></result>"))],
        [(U, None, "OK")],
        options=CARRIER,
    ),
    SendCase(
        "truncated XML is retryable",
        MANUAL_TO,
        [manual_send(SEND_SMS_REPLY[:120])],
        error=VendorRetryable,
        options=CARRIER,
    ),
    SendCase(
        "an HTML error page is retryable, never a success",
        MANUAL_TO,
        [manual_send("<html><head><title>503 Service Unavailable</title></head></html>")],
        error=VendorRetryable,
        options=CARRIER,
    ),
    SendCase("an empty body is retryable", MANUAL_TO, [manual_send("")], error=VendorRetryable, options=CARRIER),
    SendCase(
        "a DTD (an entity bomb's way in) is refused",
        MANUAL_TO,
        [manual_send('<!DOCTYPE r [<!ENTITY a "aaaa">]><status>&a;</status>')],
        error=VendorRetryable,
        options=CARRIER,
    ),
    SendCase(
        "HTTP 500 is retryable", MANUAL_TO, [manual_send(status=500)], error=VendorRetryable, options=CARRIER
    ),
    SendCase("HTTP 403 pauses", MANUAL_TO, [manual_send(status=403)], error=VendorAccountError, options=CARRIER),
    SendCase(
        "HTTP 404 is refused for good",
        MANUAL_TO,
        [manual_send(status=404)],
        error=VendorRejectedRequest,
        options=CARRIER,
    ),
    SendCase(
        "a connect error means not sent",
        MANUAL_TO,
        [Exchange("GET", SEND_SMS_PATH, raises=httpx.ConnectError)],
        error=RequestNotSent,
        options=CARRIER,
    ),
    SendCase(
        "a read timeout means the outcome is unknown",
        MANUAL_TO,
        [Exchange("GET", SEND_SMS_PATH, raises=httpx.ReadTimeout)],
        error=VendorOutcomeUnknown,
        options=CARRIER,
    ),
]

# Every documented word and the outcome a send reply carrying it must give.
ENVELOPE = {"OK": A, "BAD_SIGNATURE": P, "ERROR": R}
MESSAGE_WORDS = {
    "SENT": A, "SENT_TO_CARRIER": A, "DELIVERED_TO_CARRIER": A, "SENT_TO_DEVICE": A,
    "DELIVERED_TO_DEVICE": A, "READ": A, "PENDING": A, "SENDING": A,
    "EXPIRED": X, "UNREACHABLE": X, "NOT_SENT": R, "BAD_FROM": X, "BAD_TO": X, "BAD_ENCODING": X,
    "BAD_CARRIER/FROM": X, "UNDELIVERED": X, "NOT_ENOUGH_FUNDS": P, "BAD_TIMEZONE": P,
    "ACCEPTD": A, "BUFFRED": A, "DELIVERED TO CARRIER": A, "DELIVRD": A, "CARRIER GATEWAY ERROR": A,
    "INTERNAL ERROR": R, "BAD ADDRESS": X, "INVALID ROUTING": X, "REJECTD": X, "UNDELIV": X, "DELETED": X,
}  # fmt: skip
SEND_CASES += [
    SendCase(
        f"message status {word}: {ogangi.codes[word].meaning}",
        MANUAL_TO,
        [manual_send(with_message_status(word))],
        [(outcome, "-8174720676710228700" if outcome is A else None, word)],
        options=CARRIER,
    )
    for word, outcome in MESSAGE_WORDS.items()
]

# Every documented word and the delivery state a report carrying it must give.
PUSH_STATES = {
    "SENT": "sent", "SENT_TO_CARRIER": "sent", "DELIVERED_TO_CARRIER": "sent", "SENT_TO_DEVICE": "sent",
    "DELIVERED_TO_DEVICE": "delivered", "READ": "delivered", "PENDING": "queued", "SENDING": "queued",
    "EXPIRED": "failed", "UNREACHABLE": "failed", "NOT_SENT": "failed", "BAD_FROM": "failed",
    "BAD_TO": "failed", "BAD_ENCODING": "failed", "BAD_CARRIER/FROM": "failed", "UNDELIVERED": "failed",
    "NOT_ENOUGH_FUNDS": "failed", "BAD_TIMEZONE": "failed", "ACCEPTD": "sent", "BUFFRED": "sent",
    "DELIVERED TO CARRIER": "sent", "DELIVRD": "delivered", "CARRIER GATEWAY ERROR": "queued",
    "INTERNAL ERROR": "failed", "BAD ADDRESS": "failed", "INVALID ROUTING": "failed", "REJECTD": "failed",
    "UNDELIV": "failed", "DELETED": "failed",
}  # fmt: skip


def report_form(status: str, **extra: str) -> dict[str, str]:
    """A status callback as the vendor's callback appendix lists its fields."""
    return {
        "FROM": "19893653744",
        "TO": "13056708084",
        "MESSAGE_BODY": TEXT,
        "TYPE": "SMS",
        "CLIENT_ID": "As223sdadq8d8287v5v",
        "MESSANGI_ID": "-8174720676710228700",
        "STATUS": status,
        **extra,
    }


PUSH_CASES: list[tuple[str, dict[str, str], object]] = [
    (
        f"report {word}",
        report_form(word),
        [StatusReport("-8174720676710228700", DeliveryState(state), word, "+13056708084")],
    )
    for word, state in PUSH_STATES.items()
]
PUSH_CASES += [
    (
        "a reply (MO_MESSAGE)",
        {
            "FROM": "58123456789",
            "TO": "19893143924",
            "TEXT": " Si ",
            "ENCODING": "UTF-8",
            "TYPE": "MO_MESSAGE",
        },
        [Inbound("+58123456789", " Si ", to="19893143924")],
    ),
    (
        "lower-case names are read too",
        {"type": "SMS", "messangi_id": "7", "status": "delivrd"},
        [StatusReport("7", DeliveryState.DELIVERED, "DELIVRD")],
    ),
    ("a push notification report is not ours", {"TYPE": "PUSH", "STATUS": "SENT", "MESSANGI_ID": "1"}, []),
    ("an email report is not ours", {"TYPE": "EMAIL", "STATUS": "SENT", "MESSANGI_ID": "1"}, []),
    ("no TYPE", {"STATUS": "SENT", "MESSANGI_ID": "1"}, ValueError),
    ("an undocumented STATUS", report_form("QUEUE"), ValueError),
    ("a report without MESSANGI_ID", report_form("SENT", MESSANGI_ID=""), ValueError),
    ("a reply without TEXT", {"TYPE": "MO_MESSAGE", "FROM": "58123456789"}, ValueError),
    (
        "an empty reply",
        {"TYPE": "MO_MESSAGE", "FROM": "58123456789", "TEXT": ""},
        [Inbound("+58123456789", "")],
    ),
]

# The manual's filters as the path reads once decoded (the URL itself carries %5E, see below).
MO_PATH = (
    API
    + "tools/getMOMessages/8/1/50/"
    + "from=13056708084&order=desc&to=19893143924&keyword=^OGANGI.*&carrier=movistar/"
    + "d1F2T3Y4N56/fdc39370c05818dd7e4d4bfc01158076809ce56dd1123a527f9d8a990ce1886c"
)
MANUAL_FILTERS = {
    "from": "13056708084",
    "order": "desc",
    "to": "19893143924",
    "keyword": "^OGANGI.*",
    "carrier": "movistar",
}
MANUAL_MO = Inbound("+58123456789", "Test", to="19893143924", at="2014-10-13 10:30:51.922", keyword="^OGANGI.*")
NO_FILTER_PATH = signed_path("tools/getMOMessages", "0", "100", "order=asc")


def mo_list(rows: str) -> str:
    """A getMOMessages reply holding these MOMessage rows."""
    listing = f"<MOMessageList><records>0</records><MessageList>{rows}</MessageList></MOMessageList>"
    return envelope("OK", "Completed", f"<result>{listing}</result>", "getMOMessages")


MO_CASES = [
    QueryCase(
        "manual: the inline search string example; the reply with its closing tag restored",
        [1, 50, MANUAL_FILTERS],
        [Exchange("GET", MO_PATH, body=(FIXTURES / "getMOMessages.xml").read_text())],
        [MANUAL_MO],
    ),
    QueryCase(
        "manual: the reply exactly as printed (<MOMessageList> never closed) is not XML: retryable",
        [1, 50, MANUAL_FILTERS],
        [Exchange("GET", MO_PATH, body=(FIXTURES / "getMOMessages.manual.xml").read_text())],
        error=VendorRetryable,
    ),
    QueryCase(
        "no filter reads order=asc; an empty page ends the paging",
        [0],
        [Exchange("GET", NO_FILTER_PATH, body=mo_list(""))],
        [],
    ),
    QueryCase(
        "several values of one filter go by commas",
        [1, 100, {"carrier": ["movistar", "digitel"], "order": "DESC"}],
        [
            Exchange(
                "GET",
                signed_path("tools/getMOMessages", "1", "100", "carrier=movistar,digitel&order=desc"),
                body=mo_list("<MOMessage><text>A</text><from>584121234567</from></MOMessage>"),
            )
        ],
        [Inbound("+584121234567", "A")],
    ),
    QueryCase(
        "BAD_SIGNATURE pauses",
        [0],
        [Exchange("GET", NO_FILTER_PATH, body=envelope("BAD_SIGNATURE", "Invalid signature, access denied"))],
        error=VendorAccountError,
    ),
    QueryCase(
        "ERROR is retryable",
        [0],
        [Exchange("GET", NO_FILTER_PATH, body=envelope("ERROR", "Internal error"))],
        error=VendorRetryable,
    ),
    QueryCase(
        "OK without a MOMessageList is retryable",
        [0],
        [Exchange("GET", NO_FILTER_PATH, body=envelope("OK", "Completed"))],
        error=VendorRetryable,
    ),
    QueryCase(
        "a message without its sender is retryable",
        [0],
        [Exchange("GET", NO_FILTER_PATH, body=mo_list("<MOMessage><text>A</text></MOMessage>"))],
        error=VendorRetryable,
    ),
]

PIN = "846547"
PIN_PATH = signed_path(
    "tools/sendSMSPinMobileNumberConfirm", "null", "19893653744", "13056708084", "VHUgY8OzZGlnbyBlcw==", "6"
)
PIN_ARGS = ["+13056708084", PIN_TEXT, 6]
PIN_CASES = [
    QueryCase(
        "manual: the PIN comes back",
        PIN_ARGS,
        [Exchange("GET", PIN_PATH, body=(FIXTURES / "sendSMSPinMobileNumberConfirm.xml").read_text())],
        PIN,
    ),
    QueryCase(
        "BAD_SIGNATURE pauses",
        PIN_ARGS,
        [Exchange("GET", PIN_PATH, body=envelope("BAD_SIGNATURE", "Invalid signature, access denied"))],
        error=VendorAccountError,
    ),
    QueryCase(
        "ERROR is retryable",
        PIN_ARGS,
        [Exchange("GET", PIN_PATH, body=envelope("ERROR"))],
        error=VendorRetryable,
    ),
    QueryCase(
        "OK without a pin is retryable",
        PIN_ARGS,
        [Exchange("GET", PIN_PATH, body=envelope("OK", "Completed", "<result/>"))],
        error=VendorRetryable,
    ),
]

FIRE_PATH = signed_path("fireMessage", "1200000001", "VGVzdCBxYSBBUEkgZmlyZU1lc3NhZ2Uu")
FIRE_CASES = [
    QueryCase(
        "manual: fireMessage echoes the MO it took",
        ["+1200000001", FIRE_TEXT],
        [Exchange("GET", FIRE_PATH, body=(FIXTURES / "fireMessage.xml").read_text())],
        Inbound("+1200000001", FIRE_TEXT),
    ),
    QueryCase(
        "OK without the mo is retryable",
        ["+1200000001", FIRE_TEXT],
        [Exchange("GET", FIRE_PATH, body=envelope("OK", "Completed"))],
        error=VendorRetryable,
    ),
]

#: no delivery-report poll: reports come by callback (PUSH_CASES)
STATUS_CASES: list[QueryCase] = []


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: SendCase, caplog: pytest.LogCaptureFixture) -> None:
    run_send_case(ogangi, ACCOUNT, case, caplog)


@pytest.mark.parametrize(("label", "form", "expected"), PUSH_CASES, ids=[c[0] for c in PUSH_CASES])
def test_push(label: str, form: dict[str, str], expected: object) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            ogangi.parse_push(form)
    else:
        assert ogangi.parse_push(form) == expected


@pytest.mark.parametrize("case", MO_CASES, ids=lambda c: c.label)
def test_replies(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, ogangi.build_replies, ogangi.parse_replies, case, caplog)


@pytest.mark.parametrize("case", PIN_CASES, ids=lambda c: c.label)
def test_pin(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, ogangi.build_pin, ogangi.parse_pin, case, caplog)
    assert PIN not in caplog.text, "the PIN reached the logs"


@pytest.mark.parametrize("case", FIRE_CASES, ids=lambda c: c.label)
def test_fire(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, ogangi.build_fire, ogangi.parse_fire, case, caplog)


def test_signature_test_vector() -> None:
    values, expected = SIGNATURE_EXAMPLE
    assert ogangi.sign(values, PRIVATE_KEY) == expected


def test_every_documented_code_has_a_case() -> None:
    assert {**ENVELOPE, **MESSAGE_WORDS} == {word: rule.outcome for word, rule in ogangi.codes.items()}
    seen = {code for case in SEND_CASES for (_, _, code) in case.outcomes}
    assert set(ogangi.codes) <= seen


def test_every_status_word_has_a_push_case() -> None:
    assert set(PUSH_STATES) == set(ogangi.status_codes)
    reports = [r for (_, _, expected) in PUSH_CASES if isinstance(expected, list) for r in expected]
    seen = {r.code for r in reports if isinstance(r, StatusReport)}
    assert set(ogangi.status_codes) <= seen


def test_the_private_key_never_leaves() -> None:
    # Given every kind of request the adapter builds
    batch = Outgoing([Recipient(1, "+13056708084", TEXT)], ogangi.validate_options({"method": "sendMT"}))
    requests = [s.request for s in ogangi.build_send(ACCOUNT, batch)]
    requests += [
        ogangi.build_replies(ACCOUNT, 1, 50, MANUAL_FILTERS),
        ogangi.build_pin(ACCOUNT, *PIN_ARGS),
        ogangi.build_fire(ACCOUNT, "+1200000001", "x"),
    ]
    # Then none carries the private key, only the public key and a signature
    for request in requests:
        assert PRIVATE_KEY not in str(request.url) and PRIVATE_KEY not in str(request.headers)
        assert "/d1F2T3Y4N56/" in request.url.path


def test_the_keyword_regex_travels_url_encoded() -> None:
    request = ogangi.build_replies(ACCOUNT, 1, 50, MANUAL_FILTERS)
    assert b"&keyword=%5EOGANGI.*&" in request.url.raw_path


def test_a_pin_in_a_broken_reply_stays_out_of_the_error(caplog: pytest.LogCaptureFixture) -> None:
    # Given a reply cut short after the PIN
    caplog.set_level(logging.DEBUG)
    broken = httpx.Response(200, content=f"<status>OK</status><result><pin>{PIN}</pin".encode())
    # When it is parsed, Then the error says so without repeating the body
    with pytest.raises(VendorRetryable) as error:
        ogangi.parse_pin(broken)
    assert PIN not in str(error.value) and PIN not in caplog.text


def test_an_account_without_from_is_a_config_error() -> None:
    account = Account("ve-x", "ogangi", ACCOUNT.base_url, "VE", {**ACCOUNT.params, "from": ""})
    with pytest.raises(ConfigError, match="from"):
        ogangi.build_send(account, Outgoing([Recipient(1, "+13056708084", TEXT)], {}))


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"method": "sendPush"}, "method"),
        ({"method": ["sendMT"]}, "method"),
        ({"flags": "x"}, "flags"),
        ({"method": "sendSMS", "flags": "x"}, "flags"),
        ({"carrier": ["movistar"]}, "carrier"),
        ({"from": True}, "from"),
        ({"metodo_envio": "2via"}, "metodo_envio"),
    ],
)
def test_bad_options_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ogangi.validate_options(options)


def test_options_are_normalised() -> None:
    assert ogangi.validate_options({}) == {"method": "tools/sendSMS"}
    assert ogangi.validate_options({"method": "tools/sendSMS", "from": "+4242", "carrier": " Movistar "}) == {
        "method": "tools/sendSMS",
        "from": "4242",
        "carrier": "Movistar",
    }
    assert ogangi.validate_options({"method": "sendMT", "flags": "f1"}) == {"method": "sendMT", "flags": "f1"}


@pytest.mark.parametrize(("filters", "problem"), [({"date": "x"}, "date"), ({"order": "newest"}, "order")])
def test_bad_filters_are_refused(filters: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ogangi.build_replies(ACCOUNT, 1, 50, filters)


def test_text_limit_is_one_part() -> None:
    assert ogangi.text_limit("plain text", {}) == 160
    assert ogangi.text_limit("emoji 🙂", {}) == 70
    assert ogangi.limits.batch_size == ogangi.limits.hard_max_recipients == 1


def test_a_pin_job_sends_through_the_pin_method_and_keeps_only_a_salted_hash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given an OTP job to one phone, with Ogangi making the PIN
    from dispatcher.transport import Transport
    from dispatcher.vendors.pins import pin_matches

    caplog.set_level(logging.DEBUG)
    options = ogangi.validate_options({"method": "pin", "pin_length": 6})
    batch = Outgoing([Recipient(7, "+13056708084", "Tu código es")], options)
    (sent,) = ogangi.build_send(ACCOUNT, batch)
    assert sent.request.url.path == PIN_PATH
    reply = (FIXTURES / "sendSMSPinMobileNumberConfirm.xml").read_text()
    transport = Transport(httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, text=reply))))
    # When the reply is parsed
    (result,) = ogangi.parse_send(ACCOUNT, sent, transport.send(sent.request, 1.0, 1.0))
    # Then the message is accepted and only a salted hash of the PIN is kept
    assert result.outcome is Outcome.ACCEPTED and result.pin_hash
    assert PIN not in result.pin_hash and pin_matches(PIN, result.pin_hash)
    assert not pin_matches("000000", result.pin_hash)
    assert PIN not in caplog.text and PRIVATE_KEY not in caplog.text


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"method": "pin", "pin_length": 3}, "pin_length"), ({"pin_length": 6}, "only goes with method pin")],
)
def test_bad_pin_options_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ogangi.validate_options(options)


def test_no_funds_in_an_error_envelope_pauses_the_account(caplog: pytest.LogCaptureFixture) -> None:
    case = SendCase(
        "sendMT answers ERROR with NOT_ENOUGH_FUNDS: the account waits",
        [("+13056708084", TEXT)],
        [Exchange("GET", SEND_MT_PATH, body=envelope("ERROR", "NOT_ENOUGH_FUNDS", method="sendMT"))],
        [(P, None, "NOT_ENOUGH_FUNDS")],
        options={"method": "sendMT"},
    )
    run_send_case(ogangi, ACCOUNT, case, caplog)
