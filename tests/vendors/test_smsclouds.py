"""Api Smsclouds V1: every example of the manual (seeds/000) and every documented code."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
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
from dispatcher.text import render
from dispatcher.vendors import smsclouds
from dispatcher.vendors.base import (
    Account,
    Balance,
    DeliveryState,
    Inbound,
    Outcome,
    Outgoing,
    Recipient,
    SendRequest,
    StatusReport,
    raise_for_status,
)
from tests.manuals.smsclouds import (
    BASH_SEND,
    EMAIL_OK,
    JAVA,
    JS_SEND,
    JSON_SEND,
    PROMO,
    PROMO_JSON,
    RESPONSE_EXAMPLE,
    VOICE_OK,
)
from tests.manuals.smsclouds import EMAIL as EMAIL_JSON
from tests.manuals.smsclouds import VOICE as VOICE_JSON
from tests.vendors.runner import Exchange, QueryCase, SendCase, run_query_case, run_send_case

TOKEN = "tok-test-9f8e7d6c5b4a3210"
ACCOUNT = Account(
    key="mx-clouds",
    vendor="smsclouds",
    base_url="https://smsclouds.cloud",
    country="MX",
    params={"token": TOKEN},
    secret_fields=frozenset({"token"}),
)
FIXTURES = Path(__file__).parent / "fixtures" / "smsclouds"
GET_HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
JSON_HEADERS = {**GET_HEADERS, "Content-Type": "application/json"}
SEND, STATUS, RESPONSE, USER = "/api/v1/message", "/api/v1/status", "/api/v1/response", "/api/v1/user"

A, R, X, P, U = Outcome.ACCEPTED, Outcome.RETRY, Outcome.REJECTED, Outcome.PAUSE_ACCOUNT, Outcome.UNKNOWN


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def message(cellphones: list[str], text: str, country: int = 1, **extra: Any) -> dict[str, Any]:
    """The JSON of POST /api/v1/message."""
    return {"message": text, "cellphones": cellphones, "country": country, "allow_responses": True, **extra}


def added(*ids: int, campaign: int = 14) -> str:
    """A success reply shaped like the manual's."""
    data = {"information": "Messages Added Correctly", "added": len(ids), "campaign_id": campaign}
    return json.dumps({"data": {**data, "messages_ids": list(ids)}})


def error(status: int | str) -> str:
    return json.dumps({"error": {"information": "Information about the error", "status_code": status}})


def post(path: str, body: str, status: int = 200, **fields: Any) -> Exchange:
    return Exchange("POST", path, headers=JSON_HEADERS, body=body, status=status, **fields)


@dataclass
class Case(SendCase):
    #: per recipient, its vars (the shared runner builds recipients without them)
    vars: Sequence[Mapping[str, str]] = ()
    #: the job's template the texts were rendered from
    template: str | None = None


class WithVars:
    """smsclouds, with each recipient's vars (and the job's template) put back before the batch is built."""

    def __init__(self, variables: Sequence[Mapping[str, str]], template: str | None = None):
        self.variables = variables
        self.template = template

    def __getattr__(self, name: str) -> Any:
        return getattr(smsclouds, name)

    def build_send(self, account: Account, batch: Outgoing) -> list[SendRequest]:
        recipients = [
            replace(r, vars=self.variables[r.message_id - 1], template=self.template) for r in batch.recipients
        ]
        return smsclouds.build_send(account, Outgoing(recipients, batch.options))


LONG = "x" * 161

SEND_CASES: list[SendCase] = [
    Case(
        "manual (bash): three numbers personalised through combination; ids follow the cellphones",
        [("+521234567890", PROMO), ("+521234567891", PROMO), ("+521234567892", PROMO)],
        [
            post(
                SEND,
                fixture("message_reply.json"),
                # the manual writes "country":"1"; its parameter table says integer
                json={**BASH_SEND, "country": 1},
            )
        ],
        [(A, "40", None), (A, "41", None), (A, "42", None)],
        vars=[
            {"name": "John", "field1": "7SADAS6D786A"},
            {"name": "Joe", "field1": "7SADAS6D786B"},
            {"name": "Dave", "field1": "7SADAS6D786C"},
        ],
    ),
    Case(
        "manual (JSON example): two numbers with names and field1 (the reply is ours)",
        [("+524498987282", PROMO_JSON), ("+524492799694", PROMO_JSON)],
        [
            post(
                SEND,
                added(7, 8),
                json={**JSON_SEND, "country": 1},
            )
        ],
        [(A, "7", None), (A, "8", None)],
        vars=[{"name": "John", "field1": "7SADAS6D786A"}, {"name": "Joe", "field1": "7SADAS6D786B"}],
    ),
    SendCase(
        "manual (javascript): encode forced by the job; its reply lists 3 ids for 1 number: unknown",
        [("+524498987282", JS_SEND["message"])],
        [
            post(
                SEND,
                fixture("message_reply.json"),
                json=JS_SEND,
            )
        ],
        [(U, None, None)],
        options={"encode": True},
    ),
    Case(
        "manual (java): one number, <+B+> from its name, encode forced (the reply is ours)",
        [("+524498987282", JAVA)],
        [
            post(
                SEND,
                added(40),
                json=message(["4498987282"], JAVA, combination=[{"names": ["5F2G5J5"]}], encode=True),
            )
        ],
        [(A, "40", None)],
        options={"encode": True},
        vars=[{"name": "5F2G5J5"}],
    ),
    SendCase(
        "accents need encode (the manual), chosen from the text",
        [("+524498987282", "Hola José, tu cita es mañana")],
        [post(SEND, added(1), json=message(["4498987282"], "Hola José, tu cita es mañana", encode=True))],
        [(A, "1", None)],
    ),
    Case(
        "a var with accents makes the request encoded even when the text is plain",
        [("+524498987282", "Hola <+B+>"), ("+524492799694", "Hola <+B+>")],
        [
            post(SEND, added(1), json=message(["4498987282"], "Hola <+B+>", combination=[{"names": ["Ana"]}])),
            post(
                SEND,
                added(2),
                json=message(["4492799694"], "Hola <+B+>", combination=[{"names": ["Inés"]}], encode=True),
            ),
        ],
        [(A, "1", None), (A, "2", None)],
        vars=[{"name": "Ana"}, {"name": "Inés"}],
    ),
    SendCase(
        "160 plain characters go as one message",
        [("+524498987282", "x" * 160)],
        [post(SEND, added(1), json=message(["4498987282"], "x" * 160))],
        [(A, "1", None)],
    ),
    SendCase(
        "161 plain characters go with large_message",
        [("+524498987282", LONG)],
        [post(SEND, added(1), json=message(["4498987282"], LONG, large_message=True))],
        [(A, "1", None)],
    ),
    SendCase(
        "one request per route: Mexico (1) and Colombia (3)",
        [("+524498987282", "Hi"), ("+573001234567", "Hi"), ("+524492799694", "Hi")],
        [
            post(SEND, added(1, 2), json=message(["4498987282", "4492799694"], "Hi")),
            post(SEND, added(3), json=message(["3001234567"], "Hi", country=3)),
        ],
        [(A, "1", None), (A, "3", None), (A, "2", None)],
    ),
    SendCase(
        "texts the dispatcher rendered differently go one request per text",
        [("+524498987282", "Hola Ana"), ("+524492799694", "Hola Luis")],
        [
            post(SEND, added(1), json=message(["4498987282"], "Hola Ana")),
            post(SEND, added(2), json=message(["4492799694"], "Hola Luis")),
        ],
        [(A, "1", None), (A, "2", None)],
    ),
    SendCase(
        "fewer ids than numbers: which is whose is unknown, never resent blindly",
        [("+524498987282", "Hi"), ("+524492799694", "Hi")],
        [post(SEND, added(1))],
        [(U, None, None), (U, None, None)],
    ),
    SendCase(
        "data without messages_ids: taken, but unknown under which ids",
        [("+524498987282", "Hi")],
        [post(SEND, json.dumps({"data": {"information": "Messages Added Correctly", "added": 1}}))],
        [(U, None, None)],
    ),
    SendCase(
        "an HTML error page is retryable, never a success",
        [("+524498987282", "Hi")],
        [post(SEND, "<html><body>Bad Gateway</body></html>")],
        error=VendorRetryable,
    ),
    SendCase(
        "JSON with neither data nor error is retryable",
        [("+524498987282", "Hi")],
        [post(SEND, '{"status": "ok"}')],
        error=VendorRetryable,
    ),
    SendCase(
        "HTTP 429 is retryable",
        [("+524498987282", "Hi")],
        [post(SEND, "", status=429)],
        error=VendorRetryable,
    ),
    SendCase(
        "an undocumented status_code in a 200 error body is kept raw and unknown, never resent",
        [("+524498987282", "Hi"), ("+524492799694", "Hi")],
        [post(SEND, error(418))],
        [(U, None, "418"), (U, None, "418")],
    ),
    SendCase(
        "a connect error means not sent",
        [("+524498987282", "Hi")],
        [Exchange("POST", SEND, raises=httpx.ConnectError)],
        error=RequestNotSent,
    ),
    SendCase(
        "a read timeout means the outcome is unknown",
        [("+524498987282", "Hi")],
        [Exchange("POST", SEND, raises=httpx.ReadTimeout)],
        error=VendorOutcomeUnknown,
    ),
]

# Every documented code: its outcome and the error its HTTP status raises.
DOCUMENTED = {
    "400": (X, VendorRejectedRequest),
    "401": (P, VendorAccountError),
    "404": (X, VendorRejectedRequest),
    "422": (X, VendorRejectedRequest),
    "500": (R, VendorRetryable),
}
SEND_CASES += [
    SendCase(
        f"HTTP {code}: {smsclouds.codes[code].meaning}",
        [("+524498987282", "Hi")],
        [post(SEND, error(int(code)), status=int(code))],
        error=exc,
    )
    for code, (_, exc) in DOCUMENTED.items()
]
SEND_CASES += [
    SendCase(
        f"status_code {code} in a 200 body",
        [("+524498987282", "Hi")],
        [post(SEND, error(int(code)))],
        [(outcome, None, code)],
    )
    for code, (outcome, _) in DOCUMENTED.items()
]


def personal(
    label: str,
    template: str,
    people: Sequence[tuple[str, Mapping[str, str]]],
    exchanges: Sequence[Exchange],
    outcomes: Sequence[tuple[Outcome, str | None, str | None]],
    **fields: Any,
) -> Case:
    """A case of a templated job: each national number's vars, its text rendered as ingest does."""
    recipients = [(f"+52{phone}", render(template, v)) for phone, v in people]
    return Case(label, recipients, exchanges, outcomes, vars=[v for _, v in people], template=template, **fields)


P1, P2, P3, P4 = "4498987282", "4492799694", "4491234567", "4497654321"
HOLA = "Hola {name}, su codigo es {code}"
HOLA_MARKED = "Hola <+B+>, su codigo es <+C+>"


def hola(*names: str) -> list[tuple[str, dict[str, str]]]:
    """People for HOLA: P1.. with these names and codes 1, 2..."""
    return [
        (p, {"name": n, "code": str(i + 1)})
        for i, (p, n) in enumerate(zip((P1, P2, P3, P4)[: len(names)], names, strict=True))
    ]


def hola_text(name: str, code: int) -> str:
    return f"Hola {name}, su codigo es {code}"


# A job's template whose placeholders fit the vendor's fields goes as one combination request.
SEND_CASES += [
    personal(
        "manual (bash) from a template: {name} and {code} become <+B+> and <+C+>, one request",
        "Hello {name} receive this promo code and get some free drinks {code}",
        [
            ("1234567890", {"name": "John", "code": "7SADAS6D786A"}),
            ("1234567891", {"name": "Joe", "code": "7SADAS6D786B"}),
            ("1234567892", {"name": "Dave", "code": "7SADAS6D786C"}),
        ],
        [post(SEND, fixture("message_reply.json"), json={**BASH_SEND, "country": 1})],
        [(A, "40", None), (A, "41", None), (A, "42", None)],
    ),
    personal(
        "manual (JSON example) from a template, a placeholder mid-text",
        "Hello {name} receive this promo code {code} and get some free drinks",
        [(P1, {"name": "John", "code": "7SADAS6D786A"}), (P2, {"name": "Joe", "code": "7SADAS6D786B"})],
        [post(SEND, added(7, 8), json={**JSON_SEND, "country": 1})],
        [(A, "7", None), (A, "8", None)],
    ),
    personal(
        "a placeholder used twice takes two markers (the manual does not say one is filled twice)",
        "{name}: hola {name}",
        [(P1, {"name": "Ana"}), (P2, {"name": "Luis"})],
        [
            post(
                SEND,
                added(1, 2),
                json=message(
                    [P1, P2],
                    "<+B+>: hola <+C+>",
                    combination=[{"names": ["Ana", "Luis"], "field1": ["Ana", "Luis"]}],
                ),
            )
        ],
        [(A, "1", None), (A, "2", None)],
    ),
    personal(
        "five placeholders fill all five fields",
        "{a}{b}{c}{d}{e}",
        [(P1, dict(zip("abcde", "12345", strict=True))), (P2, dict(zip("abcde", "67890", strict=True)))],
        [
            post(
                SEND,
                added(1, 2),
                json=message(
                    [P1, P2],
                    "<+B+><+C+><+D+><+E+><+F+>",
                    combination=[
                        {
                            "names": ["1", "6"],
                            "field1": ["2", "7"],
                            "field2": ["3", "8"],
                            "field3": ["4", "9"],
                            "field4": ["5", "0"],
                        }
                    ],
                ),
            )
        ],
        [(A, "1", None), (A, "2", None)],
    ),
    personal(
        "accented values: the encoded and the plain recipients go as two combination requests",
        HOLA,
        hola("Ana", "Inés", "Joe", "Iñaki"),
        [
            post(
                SEND,
                added(1, 3),
                json=message([P1, P3], HOLA_MARKED, combination=[{"names": ["Ana", "Joe"], "field1": ["1", "3"]}]),
            ),
            post(
                SEND,
                added(2, 4),
                json=message(
                    [P2, P4],
                    HOLA_MARKED,
                    combination=[{"names": ["Inés", "Iñaki"], "field1": ["2", "4"]}],
                    encode=True,
                ),
            ),
        ],
        [(A, "1", None), (A, "2", None), (A, "3", None), (A, "4", None)],
    ),
    personal(
        "texts past 160 characters go with large_message, the template's as written",
        "x" * 155 + " {name}",
        [(P1, {"name": "Alejandro"}), (P2, {"name": "Guadalupe"})],
        [
            post(
                SEND,
                added(1, 2),
                json=message(
                    [P1, P2],
                    "x" * 155 + " <+B+>",
                    combination=[{"names": ["Alejandro", "Guadalupe"]}],
                    large_message=True,
                ),
            )
        ],
        [(A, "1", None), (A, "2", None)],
    ),
    personal(
        "emoji and the marker syntax's characters alone (<, +, >) are carried as they are",
        HOLA,
        hola("😀 Ana", "<3", "1+1", "a > b"),
        [
            post(
                SEND,
                added(2, 3, 4),
                json=message(
                    [P2, P3, P4],
                    HOLA_MARKED,
                    combination=[{"names": ["<3", "1+1", "a > b"], "field1": ["2", "3", "4"]}],
                ),
            ),
            post(SEND, added(1), json=message([P1], hola_text("😀 Ana", 1), encode=True)),
        ],
        [(A, "1", None), (A, "2", None), (A, "3", None), (A, "4", None)],
    ),
]

# Where the template does not fit the vendor's fields, each distinct text is its own request, as before.
SEND_CASES += [
    personal(
        "one text for everyone needs no fields: one plain request",
        HOLA,
        [(P1, {"name": "Ana", "code": "7"}), (P2, {"name": "Ana", "code": "7"})],
        [post(SEND, added(1, 2), json=message([P1, P2], hola_text("Ana", 7)))],
        [(A, "1", None), (A, "2", None)],
    ),
    personal(
        "values that look like marker syntax (<+, +>) go per text; the others still share one request",
        HOLA,
        hola("<+Z+>", "Joe", "a+>", "Luis"),
        [
            post(
                SEND,
                added(2, 4),
                json=message(
                    [P2, P4], HOLA_MARKED, combination=[{"names": ["Joe", "Luis"], "field1": ["2", "4"]}]
                ),
            ),
            post(SEND, added(1), json=message([P1], hola_text("<+Z+>", 1))),
            post(SEND, added(3), json=message([P3], hola_text("a+>", 3))),
        ],
        [(A, "1", None), (A, "2", None), (A, "3", None), (A, "4", None)],
    ),
    personal(
        "a template whose own text holds <+ goes per text",
        "Precio <+IVA {name}",
        [(P1, {"name": "Ana"}), (P2, {"name": "Luis"})],
        [
            post(SEND, added(1), json=message([P1], "Precio <+IVA Ana")),
            post(SEND, added(2), json=message([P2], "Precio <+IVA Luis")),
        ],
        [(A, "1", None), (A, "2", None)],
    ),
    personal(
        "an empty value goes per text (the manual does not say an empty field is filled)",
        "Hola {name}{suffix}",
        [
            (P1, {"name": "Ana", "suffix": ""}),
            (P2, {"name": "Luis", "suffix": "!"}),
            (P3, {"name": "Joe", "suffix": "?"}),
        ],
        [
            post(
                SEND,
                added(2, 3),
                json=message(
                    [P2, P3], "Hola <+B+><+C+>", combination=[{"names": ["Luis", "Joe"], "field1": ["!", "?"]}]
                ),
            ),
            post(SEND, added(1), json=message([P1], "Hola Ana")),
        ],
        [(A, "1", None), (A, "2", None), (A, "3", None)],
    ),
    personal(
        "six placeholders are more than the vendor's five fields: per text",
        "{a}{b}{c}{d}{e}{f}",
        [(P1, dict(zip("abcdef", "123456", strict=True))), (P2, dict(zip("abcdef", "654321", strict=True)))],
        [
            post(SEND, added(1), json=message([P1], "123456")),
            post(SEND, added(2), json=message([P2], "654321")),
        ],
        [(A, "1", None), (A, "2", None)],
    ),
    personal(
        "markers longer than the values push the message past 160 while each text fits: per text",
        "{a}{b}{c}" + "x" * 150,
        [(P1, {"a": "1", "b": "2", "c": "3"}), (P2, {"a": "4", "b": "5", "c": "6"})],
        [
            post(SEND, added(1), json=message([P1], "123" + "x" * 150)),
            post(SEND, added(2), json=message([P2], "456" + "x" * 150)),
        ],
        [(A, "1", None), (A, "2", None)],
    ),
    personal(
        "an encoded text past 70 characters stays out of the combination (the vendor would cut it)",
        "Hola {name}, ñ",
        [(P1, {"name": "Ana"}), (P2, {"name": "Luis"}), (P3, {"name": "x" * 70})],
        [
            post(
                SEND,
                added(1, 2),
                json=message([P1, P2], "Hola <+B+>, ñ", combination=[{"names": ["Ana", "Luis"]}], encode=True),
            ),
            post(SEND, added(3), json=message([P3], f"Hola {'x' * 70}, ñ", encode=True)),
        ],
        [(A, "1", None), (A, "2", None), (A, "3", None)],
    ),
    Case(
        "a stored text that is not the template's rendering (a var changed or missing) goes per text",
        [
            ("+52" + P1, "Hola Ana, su codigo es 1"),
            ("+52" + P2, "Hola Luis, su codigo es 2"),
            ("+52" + P3, "Hola Joe, su codigo es 3"),
            ("+52" + P4, "Hola"),
        ],
        [
            post(
                SEND,
                added(1, 2),
                json=message(
                    [P1, P2], HOLA_MARKED, combination=[{"names": ["Ana", "Luis"], "field1": ["1", "2"]}]
                ),
            ),
            post(SEND, added(3), json=message([P3], "Hola Joe, su codigo es 3")),
            post(SEND, added(4), json=message([P4], "Hola")),
        ],
        [(A, "1", None), (A, "2", None), (A, "3", None), (A, "4", None)],
        vars=[
            {"name": "Ana", "code": "1"},
            {"name": "Luis", "code": "2"},
            {"name": "Joe", "code": "33"},
            {"name": "Eva"},
        ],
        template=HOLA,
    ),
]


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: SendCase, caplog: pytest.LogCaptureFixture) -> None:
    adapter = WithVars(case.vars, case.template) if isinstance(case, Case) and case.vars else smsclouds
    run_send_case(adapter, ACCOUNT, case, caplog)


def test_every_documented_code_has_a_case() -> None:
    assert set(DOCUMENTED) == set(smsclouds.codes)


@pytest.mark.parametrize("code", sorted(DOCUMENTED))
def test_codes_agree_with_raise_for_status(code: str) -> None:
    # Given the outcome the table promises and the error base.raise_for_status raises
    outcome, exc = DOCUMENTED[code]
    # Then both say the same thing
    assert smsclouds.codes[code].outcome == outcome
    with pytest.raises(exc):
        raise_for_status(httpx.Response(int(code)))


@pytest.mark.parametrize(
    ("text", "options", "limit"),
    [("Hello", {}, 306), ("Hola José", {}, 70), ("Price 5€", {}, 70), ("Hello", {"encode": True}, 70)],
)
def test_text_limit(text: str, options: dict, limit: int) -> None:
    assert smsclouds.text_limit(text, options) == limit


@pytest.mark.parametrize(
    ("options", "problem"), [({"encode": False}, "encode"), ({"large_message": True}, "large_message")]
)
def test_bad_options_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        smsclouds.validate_options(options)


def status_item(message_id: int, status: int, cellphone: str = "4498987282") -> dict[str, Any]:
    return {
        "campaign_id": 14,
        "message_id": message_id,
        "cellphone": cellphone,
        "message": "Hi",
        "status": status,
    }


def messages(*items: dict[str, Any]) -> str:
    return json.dumps({"data": {"information": "Messages Found", "messages": list(items)}})


STATUS_CASES = [
    QueryCase(
        "manual (bash, javascript, java): 'consequatur' is not a message id",
        [["consequatur"]],
        [],
        error=ValueError,
    ),
    QueryCase(
        "manual reply (bash): status 2 is sent",
        [["1"]],
        [post(STATUS, fixture("status_reply_sent.json"), json={"message_ids": [1]})],
        [StatusReport("1", DeliveryState.SENT, code="2", phone="1234567890")],
    ),
    QueryCase(
        "manual reply (javascript, java): status 3 is failed",
        [["1"]],
        [post(STATUS, fixture("status_reply_fail.json"), json={"message_ids": [1]})],
        [StatusReport("1", DeliveryState.FAILED, code="3", phone="1234567890")],
    ),
    QueryCase(
        "by campaign: queued (0) and in process (1) are both still queued",
        [[], ["14"]],
        [post(STATUS, messages(status_item(40, 0), status_item(41, 1)), json={"campaign_ids": [14]})],
        [
            StatusReport("40", DeliveryState.QUEUED, code="0", phone="4498987282"),
            StatusReport("41", DeliveryState.QUEUED, code="1", phone="4498987282"),
        ],
    ),
    QueryCase(
        "an undocumented status stays queued, kept raw",
        [["40"]],
        [post(STATUS, messages(status_item(40, 9)), json={"message_ids": [40]})],
        [StatusReport("40", DeliveryState.QUEUED, code="9", phone="4498987282")],
    ),
    QueryCase("no ids at all is refused", [[]], [], error=ValueError),
    QueryCase(
        "HTTP 401 pauses the account",
        [["40"]],
        [post(STATUS, error(401), status=401)],
        error=VendorAccountError,
    ),
    QueryCase("HTTP 500 is retryable", [["40"]], [post(STATUS, error(500), status=500)], error=VendorRetryable),
    QueryCase("not JSON is retryable", [["40"]], [post(STATUS, "<html></html>")], error=VendorRetryable),
    QueryCase("no data.messages is retryable", [["40"]], [post(STATUS, '{"data": {}}')], error=VendorRetryable),
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, smsclouds.build_status, smsclouds.parse_status, case, caplog)


MANUAL_REPLY = [Inbound("4492799693", "Thanks man", vendor_id="1", at="2017-04-04 16:01:52")]
MO_CASES = [
    QueryCase(
        "manual (bash, javascript, java): type 9 and message_id 'quia' are refused",
        [RESPONSE_EXAMPLE],
        [],
        error=ValueError,
    ),
    QueryCase(
        "type 1 by dates; manual reply",
        [{"type": 1, "from": "2017-04-04", "to": "2017-04-05 00:00:00"}],
        [
            post(
                RESPONSE,
                fixture("responses_reply.json"),
                json={"type": 1, "from": "2017-04-04", "to": "2017-04-05 00:00:00"},
            )
        ],
        MANUAL_REPLY,
    ),
    QueryCase(
        "type 1 implied by a datetime",
        [{"from": datetime(2017, 4, 4, 8, 30)}],
        [post(RESPONSE, fixture("responses_reply.json"), json={"type": 1, "from": "2017-04-04 08:30:00"})],
        MANUAL_REPLY,
    ),
    QueryCase(
        "type 2 by our message ids",
        [{"type": 2, "message_id": ["40", "41"]}],
        [post(RESPONSE, fixture("responses_reply.json"), json={"type": 2, "message_id": [40, 41]})],
        MANUAL_REPLY,
    ),
    QueryCase(
        "type 3 by cellphone, E.164 written as the national number",
        [{"type": 3, "cellphone": "+524492799693"}],
        [post(RESPONSE, fixture("responses_reply.json"), json={"type": 3, "cellphone": 4492799693})],
        MANUAL_REPLY,
    ),
    QueryCase(
        "type 4 by campaign, implied; no responses found",
        [{"campaign_id": "14"}],
        [
            post(
                RESPONSE,
                '{"data": {"information": "Responses Found", "count": 0}}',
                json={"type": 4, "campaign_id": 14},
            )
        ],
        [],
    ),
    QueryCase("type 2 without message_id", [{"type": 2}], [], error=ValueError),
    QueryCase("message_id must be a list", [{"type": 2, "message_id": "40"}], [], error=ValueError),
    QueryCase(
        "from does not go with type 3",
        [{"type": 3, "cellphone": "4492799693", "from": "2017-04-04"}],
        [],
        error=ValueError,
    ),
    QueryCase("a date in another format", [{"from": "04/04/2017"}], [], error=ValueError),
    QueryCase(
        "HTTP 422 is a rejected request",
        [{"campaign_id": "14"}],
        [post(RESPONSE, error(422), status=422)],
        error=VendorRejectedRequest,
    ),
    QueryCase(
        "responses that are not records",
        [{"campaign_id": "14"}],
        [post(RESPONSE, '{"data": {"responses": [1]}}')],
        error=VendorRetryable,
    ),
]


@pytest.mark.parametrize("case", MO_CASES, ids=lambda c: c.label)
def test_replies(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    def build(account: Account, filters: dict[str, Any]) -> httpx.Request:
        return smsclouds.build_replies(account, **filters)

    run_query_case(ACCOUNT, build, smsclouds.parse_replies, case, caplog)


BALANCE_CASES = [
    QueryCase(
        "manual (bash, javascript, java)",
        [],
        [Exchange("GET", USER, headers=GET_HEADERS, body=fixture("user_reply.json"))],
        Balance(500.0),
    ),
    QueryCase(
        "HTTP 401 pauses the account",
        [],
        [Exchange("GET", USER, status=401, body=error(401))],
        error=VendorAccountError,
    ),
    QueryCase("not JSON is retryable", [], [Exchange("GET", USER, body="<html></html>")], error=VendorRetryable),
    QueryCase(
        "no credit is retryable",
        [],
        [Exchange("GET", USER, body='{"data": {"user": "x"}}')],
        error=VendorRetryable,
    ),
]


@pytest.mark.parametrize("case", BALANCE_CASES, ids=lambda c: c.label)
def test_balance(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, smsclouds.build_balance, smsclouds.parse_balance, case, caplog)


WHEN = "2019-01-11 10:15:00"
PUSH_CASES: list[tuple[str, dict[str, str], Any]] = [
    (
        "manual: MO push",
        {
            "response": "This is a response text",
            "cellphone": "4499157710",
            "message_id": "158562",
            "date": WHEN,
        },
        [Inbound("4499157710", "This is a response text", vendor_id="158562", at=WHEN)],
    ),
    (
        "manual: MO push with the bullets' capitalised names",
        {"Response": "Si", "Cellphone": "4499157710", "Message_id": "158562", "Date": WHEN},
        [Inbound("4499157710", "Si", vendor_id="158562", at=WHEN)],
    ),
    (
        "manual: keyword auto-reply push",
        {
            "response": "mykeyword hola",
            "cellphone": "4499157710",
            "keyword": "mykeyword",
            "date": WHEN,
            "operador": "telcel",
        },
        [Inbound("4499157710", "mykeyword hola", at=WHEN, keyword="mykeyword")],
    ),
    ("MO push without message_id", {"response": "Si", "cellphone": "4499157710", "date": WHEN}, ValueError),
    (
        "keyword push without cellphone",
        {"response": "x", "keyword": "k", "date": WHEN, "operador": "att"},
        ValueError,
    ),
]


@pytest.mark.parametrize(("label", "params", "expected"), PUSH_CASES, ids=[c[0] for c in PUSH_CASES])
def test_push(label: str, params: dict[str, str], expected: Any) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            smsclouds.parse_push(params)
    else:
        assert smsclouds.parse_push(params) == expected


def test_mo_push_is_answered_ok() -> None:
    assert smsclouds.PUSH_ACK == "ok"


[JACK] = EMAIL_JSON["recipients"]
#: the manual's bash example as build_email's arguments
EMAIL = {
    "subject": EMAIL_JSON["subject"],
    "body": EMAIL_JSON["body"],
    "recipients": [JACK],
    "attachment": EMAIL_JSON["attachment"],
    "scheduled_date": EMAIL_JSON["scheduledDate"],
}
EMAIL_CASES = [
    QueryCase(
        "manual (bash)",
        [EMAIL],
        [post("/api/v1/email", EMAIL_OK, json=EMAIL_JSON)],
        "Email campaign created correctly.",
    ),
    QueryCase(
        "manual (javascript): the name ' Jack' goes as written",
        [{**EMAIL, "recipients": [{**JACK, "name": " Jack"}]}],
        [post("/api/v1/email", EMAIL_OK, json={**EMAIL_JSON, "recipients": [{**JACK, "name": " Jack"}]})],
        "Email campaign created correctly.",
    ),
    QueryCase(
        "manual (java): no subject, recipients 'eius'",
        [{"subject": None, "body": "test", "recipients": "eius"}],
        [],
        error=ValueError,
    ),
    QueryCase("an address without '@'", [{**EMAIL, "recipients": [{"email": "jack"}]}], [], error=ValueError),
    QueryCase(
        "a recipient field not in the manual",
        [{**EMAIL, "recipients": [{**JACK, "field5": "x"}]}],
        [],
        error=ValueError,
    ),
    QueryCase(
        "a scheduledDate in another format", [{**EMAIL, "scheduled_date": "07/08/2018"}], [], error=ValueError
    ),
    QueryCase("an attachment that is not an id", [{**EMAIL, "attachment": "doc.pdf"}], [], error=ValueError),
    QueryCase("HTTP 422", [EMAIL], [post("/api/v1/email", error(422), status=422)], error=VendorRejectedRequest),
    QueryCase("no message is retryable", [EMAIL], [post("/api/v1/email", "{}")], error=VendorRetryable),
]


@pytest.mark.parametrize("case", EMAIL_CASES, ids=lambda c: c.label)
def test_email(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    def build(account: Account, fields: dict[str, Any]) -> httpx.Request:
        return smsclouds.build_email(account, **fields)

    run_query_case(ACCOUNT, build, smsclouds.parse_email, case, caplog)


#: the manual's bash example as build_voice's arguments
VOICE = {
    "kind": VOICE_JSON["type"],
    **{name: VOICE_JSON[name] for name in ("campaign_name", "recipients", "audio", "remittent")},
    **{name: VOICE_JSON[name] for name in ("transfer_num", "transfer_key")},
    "scheduled_date": VOICE_JSON["scheduledDate"],
}
TTS = {
    "kind": 2,
    "campaign_name": "aviso",
    "text": "Hola <+NAME+>",
    "recipients": [{"cellphone": "+524499157710", "name": "Ana"}],
}
VOICE_CASES = [
    QueryCase(
        "manual (bash, javascript)",
        [VOICE],
        [post("/api/v1/voice", VOICE_OK, json=VOICE_JSON)],
        "Voice campaign created correctly.",
    ),
    QueryCase(
        "text to speech, an E.164 cellphone written nationally",
        [TTS],
        [
            post(
                "/api/v1/voice",
                VOICE_OK,
                json={
                    "type": 2,
                    "campaign_name": "aviso",
                    "text": "Hola <+NAME+>",
                    "recipients": [{"cellphone": "4499157710", "name": "Ana"}],
                },
            )
        ],
        "Voice campaign created correctly.",
    ),
    QueryCase("manual (java): recipients 'eius'", [{**VOICE, "recipients": "eius"}], [], error=ValueError),
    QueryCase("type 3 is not in the manual", [{**VOICE, "kind": 3}], [], error=ValueError),
    QueryCase("type 1 without audio", [{**VOICE, "audio": None}], [], error=ValueError),
    QueryCase("type 2 without text", [{**TTS, "text": " "}], [], error=ValueError),
    QueryCase("transfer_num without transfer_key", [{**VOICE, "transfer_key": None}], [], error=ValueError),
    QueryCase("transfer_key of two keys", [{**VOICE, "transfer_key": "55"}], [], error=ValueError),
    QueryCase("a recipient without cellphone", [{**VOICE, "recipients": [{"name": "Ana"}]}], [], error=ValueError),
    QueryCase(
        "HTTP 500 is retryable",
        [VOICE],
        [post("/api/v1/voice", error(500), status=500)],
        error=VendorRetryable,
    ),
]


@pytest.mark.parametrize("case", VOICE_CASES, ids=lambda c: c.label)
def test_voice(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    def build(account: Account, fields: dict[str, Any]) -> httpx.Request:
        return smsclouds.build_voice(account, **fields)

    run_query_case(ACCOUNT, build, smsclouds.parse_voice, case, caplog)


@pytest.mark.parametrize(
    ("phone", "text", "vars", "template", "why"),
    [
        ("+447700900123", "Hi", {}, None, "no route for this number's country"),
        ("+524498987282", "Hola <+B+>", {}, None, "has no var 'name'"),
        ("+524498987282", "Hola <+B+> " + "x" * 70, {"name": "Inés"}, None, "need encode"),
        # the job wrote no marker: the value brought it, and the vendor would fill it with field1
        ("+524498987282", "Hola <+C+>", {"name": "<+C+>", "field1": "x"}, "Hola {name}", "a value holds"),
    ],
)
def test_recipients_smsclouds_cannot_take_are_refused_before_any_request(
    phone: str, text: str, vars: dict, template: str | None, why: str
) -> None:
    recipient = Recipient(1, phone, text, vars, template)
    assert why in (smsclouds.check_recipient(recipient, {}) or "")
    with pytest.raises(ValueError, match=why.split("'")[0]):
        smsclouds.build_send(ACCOUNT, Outgoing([recipient]))


def test_a_routable_recipient_passes_the_check() -> None:
    assert smsclouds.check_recipient(Recipient(1, "+524498987282", "Hola <+B+>", {"name": "Ana"}), {}) is None


CHANNEL_CASES = [
    SendCase(
        "an email job goes as one campaign per distinct text",
        [("jack@example.com", "Hi, please pay"), ("ana@example.com", "Hi, please pay")],
        [
            post(
                "/api/v1/email",
                EMAIL_OK,
                json={
                    "body": "Hi, please pay",
                    "subject": "pay order",
                    "recipients": [{"email": "jack@example.com"}, {"email": "ana@example.com"}],
                },
            )
        ],
        [(A, None, None), (A, None, None)],
        options={"channel": "email", "subject": "pay order"},
    ),
    SendCase(
        "a voice job speaks the text to each phone",
        [("+524499157710", "Su pago vence hoy")],
        [
            post(
                "/api/v1/voice",
                VOICE_OK,
                json={
                    "type": 2,
                    "campaign_name": "cobranza",
                    "recipients": [{"cellphone": "4499157710"}],
                    "text": "Su pago vence hoy",
                },
            )
        ],
        [(A, None, None)],
        options={"channel": "voice", "campaign_name": "cobranza"},
    ),
    SendCase(
        "a refused campaign: HTTP 422 rejects the request",
        [("jack@example.com", "Hi")],
        [post("/api/v1/email", error(422), status=422)],
        options={"channel": "email", "subject": "pay order"},
        error=VendorRejectedRequest,
    ),
]


@pytest.mark.parametrize("case", CHANNEL_CASES, ids=lambda c: c.label)
def test_email_and_voice_channels(case: SendCase, caplog: pytest.LogCaptureFixture) -> None:
    run_send_case(smsclouds, ACCOUNT, case, caplog)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"channel": "email"}, "subject"),
        ({"channel": "email", "subject": "x", "encode": True}, "no option 'encode'"),
        ({"channel": "voice", "voice_type": 1}, "needs audio"),
        ({"channel": "voice", "transfer_num": "4491234567"}, "go together"),
    ],
)
def test_channel_options_are_checked_per_the_manual(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        smsclouds.validate_options(options)


def test_a_bad_email_address_is_refused_before_any_request() -> None:
    options = {"channel": "email", "subject": "x"}
    assert "not an email address" in smsclouds.check_recipient(Recipient(1, "jack-at-example", "Hi"), options)
    assert smsclouds.check_recipient(Recipient(1, "jack@example.com", "Hi"), options) is None


def test_an_error_that_says_no_credit_pauses_the_account(caplog: pytest.LogCaptureFixture) -> None:
    case = SendCase(
        "422 insufficient credit: the account waits, nothing fails",
        [("+524498987282", "Hi")],
        [
            post(
                SEND,
                json.dumps({"error": {"information": "Insufficient credit", "status_code": 422}}),
                status=422,
            )
        ],
        error=VendorAccountError,
    )
    run_send_case(smsclouds, ACCOUNT, case, caplog)


def test_each_phone_is_parsed_once_however_often_its_batch_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a batch of 500 personalised recipients, and a count of the phone parses
    calls = []
    parse = smsclouds.wire.phonenumbers.parse
    monkeypatch.setattr(smsclouds.wire.phonenumbers, "parse", lambda *a: calls.append(a) or parse(*a))
    smsclouds.wire.vendor_number.cache_clear()
    people = [{"name": f"Cliente {i}", "code": str(i)} for i in range(500)]
    batch = Outgoing([Recipient(i, f"+52449{i:07d}", render(HOLA, v), v, HOLA) for i, v in enumerate(people)])
    # When the batch is built again and again (the sender builds it, then builds the claimed rows)
    for _ in range(3):
        assert len(smsclouds.build_send(ACCOUNT, batch)) == 1
    # Then each phone was parsed once
    assert len(calls) == 500
