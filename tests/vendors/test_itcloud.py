"""IT Cloud: every example of the manual (seeds/001) and every documented code."""

from __future__ import annotations

import httpx
import pytest

from dispatcher.errors import (
    RequestNotSent,
    VendorAccountError,
    VendorBusy,
    VendorOutcomeUnknown,
    VendorRetryable,
)
from dispatcher.vendors import itcloud
from dispatcher.vendors.base import Account, Balance, Inbound, Outcome, Outgoing, Recipient
from tests.manuals.itcloud import FOUR_GSM, FOUR_REPLY, TEXT, TOKEN, USER
from tests.vendors.runner import Exchange, QueryCase, SendCase, run_query_case, run_send_case

ACCOUNT = Account(
    key="co-main",
    vendor="itcloud",
    base_url="https://contacto-masivo.com/sms/back_sms/public",
    country="CO",
    params={"user": USER, "token": TOKEN},
    secret_fields=frozenset({"token"}),
)
PATH = "/sms/back_sms/public/api/sendsms"


def form(gsm: str, text: str = TEXT, **extra: str) -> dict[str, str]:
    return {
        "user": USER,
        "token": TOKEN,
        "GSM": gsm,
        "SMSText": text,
        **extra,
    }


A, R, W, X, P, U, D = (
    Outcome.ACCEPTED,
    Outcome.RETRY,
    Outcome.WAIT_WINDOW,
    Outcome.REJECTED,
    Outcome.PAUSE_ACCOUNT,
    Outcome.UNKNOWN,
    Outcome.DEFER,
)

SEND_CASES = [
    SendCase(
        "manual: one number, 2via",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, form=form("573117807125", metodo_envio="2via"), body="573117807125,12102253")],
        [(A, "12102253", "12102253")],
        options={"metodo_envio": "2via"},
    ),
    SendCase(
        "manual: four numbers, one line each (accepted, -4, 0, -3)",
        [("+584142871901", TEXT), ("+57111", TEXT), ("+573802338546", TEXT), ("+573002333333", TEXT)],
        [
            Exchange(
                "POST",
                PATH,
                form=form(FOUR_GSM),
                body=FOUR_REPLY,
            )
        ],
        [(A, "12102253", "12102253"), (X, None, "-4"), (X, None, "0"), (P, None, "-3")],
    ),
    SendCase(
        "lines separated by <br>",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, form=form("573117807125,573102334455"), body="573117807125,1<br>573102334455,2")],
        [(A, "1", "1"), (A, "2", "2")],
    ),
    SendCase(
        "bare -1: bad credentials pause the account for every number",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, body="-1")],
        [(P, None, "-1"), (P, None, "-1")],
    ),
    SendCase(
        "bare acceptance id for a single number",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, body="555")],
        [(A, "555", "555")],
    ),
    SendCase(
        "a NANP number goes as 01 + 10 digits",
        [("+13055550123", TEXT)],
        [Exchange("POST", PATH, form=form("013055550123"), body="013055550123,77")],
        [(A, "77", "77")],
    ),
    SendCase(
        "a number the reply does not mention is unknown, never sent again blindly",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, body="573117807125,9")],
        [(A, "9", "9"), (U, None, None)],
    ),
    SendCase(
        "an undocumented code is kept raw and unknown, never resent: the vendor may have sent it",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, body="573117807125,-99\n573102334455,7")],
        [(U, None, "-99"), (A, "7", "7")],
    ),
    SendCase(
        "a bare acceptance id for several numbers says not whose it is: unknown, never resent",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, body="555")],
        [(U, None, "555"), (U, None, "555")],
    ),
    SendCase(
        "a bare per-number code for several numbers says not which number: unknown",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, body="-4")],
        [(U, None, "-4"), (U, None, "-4")],
    ),
    SendCase(
        "a bare undocumented code for several numbers is unknown",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, body="-99")],
        [(U, None, "-99"), (U, None, "-99")],
    ),
    SendCase(
        "bare -6 for several numbers: maintenance, nothing sent or charged: come back later",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, body="-6")],
        [(D, None, "-6"), (D, None, "-6")],
    ),
    SendCase(
        "bare -7: too many numbers in one request, never the numbers' fault: come back later",
        [("+573117807125", TEXT), ("+573102334455", TEXT)],
        [Exchange("POST", PATH, body="-7")],
        [(D, None, "-7"), (D, None, "-7")],
    ),
    SendCase(
        "HTTP 500 is retryable",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, status=500)],
        error=VendorRetryable,
    ),
    SendCase(
        "HTTP 429: the vendor did nothing and says come back later",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, status=429, reply_headers={"Retry-After": "30"})],
        error=VendorBusy,
    ),
    SendCase(
        "an Apache error page is retryable, never a success",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, body="<html><head><title>503 Service Unavailable</title></head></html>")],
        error=VendorRetryable,
    ),
    SendCase(
        "an empty body is retryable",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, body="")],
        error=VendorRetryable,
    ),
    SendCase(
        "a connect error means not sent",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, raises=httpx.ConnectError)],
        error=RequestNotSent,
    ),
    SendCase(
        "a read timeout means the outcome is unknown",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, raises=httpx.ReadTimeout)],
        error=VendorOutcomeUnknown,
    ),
    SendCase(
        "personalised texts: one request per distinct text",
        [("+573117807125", "Hola Ana"), ("+573102334455", "Hola Luis")],
        [
            Exchange("POST", PATH, form=form("573117807125", "Hola Ana"), body="573117807125,1"),
            Exchange("POST", PATH, form=form("573102334455", "Hola Luis"), body="573102334455,2"),
        ],
        [(A, "1", "1"), (A, "2", "2")],
    ),
]

# Every documented per-phone code, each on its own.
DOCUMENTED = {
    "-1": P, "-2": W, "-3": P, "-4": X, "-5": X, "-6": D,
    "-7": D, "-8": X, "-9": X, "-10": X, "-11": X, "0": X,
}  # fmt: skip
SEND_CASES += [
    SendCase(
        f"code {code}: {itcloud.codes[code].meaning}",
        [("+573117807125", TEXT)],
        [Exchange("POST", PATH, body=f"573117807125,{code}")],
        [(outcome, None, code)],
    )
    for code, outcome in DOCUMENTED.items()
]


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: SendCase, caplog: pytest.LogCaptureFixture) -> None:
    run_send_case(itcloud, ACCOUNT, case, caplog)


def test_every_documented_code_has_a_case() -> None:
    assert set(DOCUMENTED) == set(itcloud.codes)


def test_a_blocklisted_number_is_refused_and_opted_out() -> None:
    # Given a reply where one number is on the vendor's block list (-8) and one is refused (-4)
    recipients = [Recipient(1, "+573117807125", TEXT), Recipient(2, "+573102334455", TEXT)]
    (sent,) = itcloud.build_send(ACCOUNT, Outgoing(recipients))
    response = httpx.Response(200, text="573117807125,-8\n573102334455,-4", request=sent.request)
    # When it is read
    blocked, bad = itcloud.parse_send(ACCOUNT, sent, response)
    # Then only the blocklisted number asks to be opted out
    assert (blocked.outcome, blocked.opt_out) == (X, True)
    assert (bad.outcome, bad.opt_out) == (X, False)


def test_no_request_carries_more_numbers_than_the_manual_recommends() -> None:
    recipients = [Recipient(i, f"+57300{i:07d}", TEXT) for i in range(2500)]
    requests = itcloud.build_send(ACCOUNT, Outgoing(recipients))
    assert [len(r.recipients) for r in requests] == [1000, 1000, 500]
    assert [len(r.request.read().decode().split("GSM=")[1].split("&")[0].split("%2C")) for r in requests] == [
        1000,
        1000,
        500,
    ]


@pytest.mark.parametrize(
    ("options", "problem"),
    [({"metodo_envio": "sms"}, "metodo_envio"), ({"carrier": "x"}, "carrier")],
)
def test_bad_options_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        itcloud.validate_options(options)


BALANCE = "/itcloud/api/sendsms/query.php"
AUTH = {"user": USER, "token": TOKEN}
BALANCE_CASES = [
    QueryCase(
        "manual: the balance is a number",
        [],
        [Exchange("GET", BALANCE, query=AUTH, body="1520")],
        Balance(1520.0),
    ),
    QueryCase(
        "manual: -1 is a failed authentication",
        [],
        [Exchange("GET", BALANCE, body="-1")],
        error=VendorAccountError,
    ),
    QueryCase(
        "an error page is retryable",
        [],
        [Exchange("GET", BALANCE, body="<html>502</html>")],
        error=VendorRetryable,
    ),
    QueryCase("HTTP 503 is retryable", [], [Exchange("GET", BALANCE, status=503)], error=VendorRetryable),
]


@pytest.mark.parametrize("case", BALANCE_CASES, ids=lambda c: c.label)
def test_balance(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, lambda account: itcloud.build_balance(account), itcloud.parse_balance, case, caplog)


def test_a_number_that_is_not_12_digits_is_refused_before_any_request() -> None:
    from dispatcher.vendors.base import Recipient

    assert "12 digits" in (itcloud.check_recipient(Recipient(1, "+5731234", "x"), {}) or "")
    assert itcloud.check_recipient(Recipient(1, "+573117807125", "x"), {}) is None
    assert itcloud.check_recipient(Recipient(1, "+13055550123", "x"), {}) is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"mensaje": "HolaMundo", "celular": "573152338956"}, [Inbound("+573152338956", "HolaMundo")]),
        ({"mensaje": "SALIR", "celular": "013055550123"}, [Inbound("+13055550123", "SALIR")]),
    ],
)
def test_a_pushed_reply_is_read_as_the_manual_sends_it(params: dict, expected: list) -> None:
    assert itcloud.parse_push(params) == expected


@pytest.mark.parametrize(
    "params", [{"mensaje": "x"}, {"celular": "573152338956"}, {"mensaje": "x", "celular": "abc"}]
)
def test_a_pushed_reply_without_its_fields_is_refused(params: dict) -> None:
    with pytest.raises(ValueError, match="mensaje"):
        itcloud.parse_push(params)
