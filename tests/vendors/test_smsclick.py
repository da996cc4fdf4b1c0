"""SMSClick: every example of the manual (seeds/002) and every documented code."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from dispatcher.errors import (
    RequestNotSent,
    VendorAccountError,
    VendorError,
    VendorOutcomeUnknown,
    VendorRejectedRequest,
    VendorRetryable,
)
from dispatcher.vendors import smsclick
from dispatcher.vendors.base import (
    Account,
    Balance,
    DeliveryState,
    Inbound,
    Outcome,
    Outgoing,
    Recipient,
    StatusReport,
)
from tests.manuals.smsclick import (
    APIKEY,
    CREDITS,
    CREDITS_ERRORS,
    CREDITS_OK,
    GET,
    GET_ERRORS,
    GOT,
    REPORT,
    REPORT_ERRORS,
    SEND,
    SEND_ERRORS,
    SENT,
    TEXT,
)
from tests.vendors.runner import Exchange, QueryCase, SendCase, run_query_case, run_send_case

ACCOUNT = Account(
    key="mx-click",
    vendor="smsclick",
    base_url="https://app.smsclick.com.mx",
    country="MX",
    params={"apikey": APIKEY},
    secret_fields=frozenset({"apikey"}),
)
FIXTURES = Path(__file__).parent / "fixtures" / "smsclick"

A, R, X, P, U = Outcome.ACCEPTED, Outcome.RETRY, Outcome.REJECTED, Outcome.PAUSE_ACCOUNT, Outcome.UNKNOWN


def form(telefono: str = "5526632636", mensaje: str = TEXT, **extra: str) -> dict[str, str]:
    return {"APIKEY": APIKEY, "TELEFONO": telefono, "MENSAJE": mensaje, **extra}


def post(path: str, body: str, fields: dict[str, str] | None = None, status: int = 200) -> Exchange:
    return Exchange("POST", path, form=fields, body=body, status=status)


# The manual's replies to sendMsg.json are SENT and SEND_ERRORS (tests/manuals/smsclick.py).
DOCUMENTED_SEND = {"1": A, "-100": P, "-101": P, "-102": X, "-103": X, "-104": P, "-105": X}

SEND_CASES = [
    SendCase(
        "manual (PHP): one number; the success example",
        [("+525526632636", TEXT)],
        [post(SEND, SENT, form())],
        [(A, "123", "1")],
    ),
    SendCase(
        "the field table's creditos_usados is read too",
        [("+525526632636", TEXT)],
        [post(SEND, '{"codigo":1,"descripcion":"Mensaje enviado","id_mensaje":"124","creditos_usados":2}')],
        [(A, "124", "1")],
    ),
    SendCase(
        "the job's interactive rule goes as ID_REGLA_INTERACTIVA",
        [("+525554542570", "Felicidades: Responde SI para usar tus puntos en tu compra")],
        [
            post(
                SEND,
                SENT,
                form(
                    "5554542570",
                    "Felicidades: Responde SI para usar tus puntos en tu compra",
                    ID_REGLA_INTERACTIVA="77",
                ),
            )
        ],
        [(A, "123", "1")],
        options={"ID_REGLA_INTERACTIVA": 77},
    ),
    SendCase(
        "one request per number",
        [("+525526632636", TEXT), ("+525554542570", TEXT)],
        [post(SEND, SENT, form()), post(SEND, SENT.replace("123", "124"), form("5554542570"))],
        [(A, "123", "1"), (A, "124", "1")],
    ),
    SendCase(
        "codigo written as a string",
        [("+525526632636", TEXT)],
        [post(SEND, '{"codigo":"1","id_mensaje":125}')],
        [(A, "125", "1")],
    ),
    SendCase(
        "codigo 1 without id_mensaje: sent, so unknown rather than sent twice",
        [("+525526632636", TEXT)],
        [post(SEND, '{"codigo":1, "descripcion":"Mensaje enviado"}')],
        [(U, None, "1")],
    ),
    SendCase(
        "an undocumented code is kept raw and retried within the attempt budget",
        [("+525526632636", TEXT)],
        [post(SEND, '{"codigo":-999, "descripcion":"?"}')],
        [(R, None, "-999")],
    ),
    SendCase(
        "an HTML error page is retryable, never a success",
        [("+525526632636", TEXT)],
        [post(SEND, "<html><title>502 Bad Gateway</title></html>")],
        error=VendorRetryable,
    ),
    SendCase(
        "JSON without codigo is retryable",
        [("+525526632636", TEXT)],
        [post(SEND, '{"id_mensaje":123}')],
        error=VendorRetryable,
    ),
    SendCase(
        "HTTP 500 is retryable",
        [("+525526632636", TEXT)],
        [post(SEND, "", status=500)],
        error=VendorRetryable,
    ),
    SendCase(
        "HTTP 401 pauses the account",
        [("+525526632636", TEXT)],
        [post(SEND, "", status=401)],
        error=VendorAccountError,
    ),
    SendCase(
        "a connect error means not sent",
        [("+525526632636", TEXT)],
        [Exchange("POST", SEND, raises=httpx.ConnectError)],
        error=RequestNotSent,
    ),
    SendCase(
        "a read timeout means the outcome is unknown",
        [("+525526632636", TEXT)],
        [Exchange("POST", SEND, raises=httpx.ReadTimeout)],
        error=VendorOutcomeUnknown,
    ),
]
SEND_CASES += [
    SendCase(
        f"manual: code {code}: {smsclick.codes[code].meaning}",
        [("+525526632636", TEXT)],
        [post(SEND, body, form())],
        [(DOCUMENTED_SEND[code], None, code)],
    )
    for code, body in SEND_ERRORS.items()
]


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda c: c.label)
def test_send(case: SendCase, caplog: pytest.LogCaptureFixture) -> None:
    run_send_case(smsclick, ACCOUNT, case, caplog)


# The manual's replies to the queries (GOT, GET_ERRORS, REPORT_ERRORS in tests/manuals/smsclick.py)
# raise the error of their code's outcome.
DOCUMENTED_QUERY: dict[str, type[VendorError]] = {
    "-100": VendorAccountError,
    "-101": VendorAccountError,
    "-200": VendorRejectedRequest,
    "-201": VendorRejectedRequest,
    "-300": VendorRejectedRequest,
    "-301": VendorRejectedRequest,
    "-302": VendorRejectedRequest,
    "-303": VendorRejectedRequest,
}


def report_example() -> str:
    """The manual's report reply is printed CSV-quoted; this is the JSON inside."""
    return next(csv.reader([(FIXTURES / "report_example.txt").read_text().strip()]))[0]


def get_form(vendor_id: str = "455121") -> dict[str, str]:
    return {"APIKEY": APIKEY, "ID_MENSAJE": vendor_id}


RANGE_FORM = {"APIKEY": APIKEY, "FECHA_INICIO": "01-01-2018 00:00:00", "FECHA_FIN": "30-03-2018 23:59:59"}
REPORT_STATUS = StatusReport(
    "123456", DeliveryState.QUEUED, code="1", phone="+525548007276", at="2017-08-12 13:35:56"
)

STATUS_CASES = [
    QueryCase(
        "manual (PHP getMsg): ID_MENSAJE 455121; the success example",
        [["455121"]],
        [post(GET, GOT, get_form())],
        [StatusReport("455121", DeliveryState.QUEUED, code="1", phone="+525554542570", at="2017-08-12 17:34:56")],
    ),
    QueryCase(
        "received (3) is delivered",
        [["9"]],
        [post(GET, GOT.replace('"estatus_mensaje":1', '"estatus_mensaje":3'), get_form("9"))],
        [StatusReport("9", DeliveryState.DELIVERED, code="3", phone="+525554542570", at="2017-08-12 17:34:56")],
    ),
    QueryCase("getMsg takes one id per request", [["1", "2"]], [], error=ValueError),
    QueryCase("not JSON is retryable", [["9"]], [post(GET, "<html></html>")], error=VendorRetryable),
    QueryCase(
        "codigo 1 without a status record is retryable",
        [["9"]],
        [post(GET, '{"codigo":1}')],
        error=VendorRetryable,
    ),
    QueryCase("HTTP 503 is retryable", [["9"]], [post(GET, "", status=503)], error=VendorRetryable),
]
STATUS_CASES += [
    QueryCase(
        f"manual getMsg: code {code}",
        [["455121"]],
        [post(GET, body, get_form())],
        error=DOCUMENTED_QUERY[code],
    )
    for code, body in GET_ERRORS.items()
]
REPORT_CASES = [
    QueryCase(
        "manual (PHP report): a date range; the success example",
        ["01-01-2018 00:00:00", datetime(2018, 3, 30, 23, 59, 59)],
        [post(REPORT, report_example(), RANGE_FORM)],
        [REPORT_STATUS],
    ),
    QueryCase(
        "the manual's filters: ESTATUS_MENSAJE 2,3,4 and ID_CAMPANIA",
        ["01-01-2018 00:00:00", "30-03-2018 23:59:59", [2, 3, 4], 88],
        [
            post(
                REPORT,
                '{"codigo":1,"descripcion":"ok","mensajes":[]}',
                {**RANGE_FORM, "ESTATUS_MENSAJE": "2,3,4", "ID_CAMPANIA": "88"},
            )
        ],
        [],
    ),
    QueryCase(
        "a status the manual does not list",
        ["01-01-2018 00:00:00", "30-03-2018 23:59:59", [5]],
        [],
        error=ValueError,
    ),
    QueryCase("a date in another format", ["2018-01-01", "30-03-2018 23:59:59"], [], error=ValueError),
    QueryCase(
        "the manual's report text as printed (CSV-quoted) is not JSON: retryable",
        ["01-01-2018 00:00:00", "30-03-2018 23:59:59"],
        [post(REPORT, (FIXTURES / "report_example.txt").read_text())],
        error=VendorRetryable,
    ),
]
REPORT_CASES += [
    QueryCase(
        f"manual report: code {code}",
        ["01-01-2018 00:00:00", "30-03-2018 23:59:59"],
        [post(REPORT, body, RANGE_FORM)],
        error=DOCUMENTED_QUERY[code],
    )
    for code, body in REPORT_ERRORS.items()
]


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.label)
def test_status(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, smsclick.build_status, smsclick.parse_status, case, caplog)


@pytest.mark.parametrize("case", REPORT_CASES, ids=lambda c: c.label)
def test_report(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, smsclick.build_report, smsclick.parse_status, case, caplog)


def test_status_requests_are_one_per_id() -> None:
    requests = smsclick.build_status_requests(ACCOUNT, ["1", "2"])
    assert [r.content.decode().split("ID_MENSAJE=")[1] for r in requests] == ["1", "2"]


MO_CASES = [
    QueryCase(
        "manual report: respuesta_cliente",
        ["01-01-2018 00:00:00", "30-03-2018 23:59:59"],
        [post(REPORT, report_example(), RANGE_FORM)],
        [Inbound("+525548007276", "SI", vendor_id="123456", at="2017-08-13 15:35:56")],
    ),
    QueryCase(
        "a message that is not interactive carries respuesta_cliente NULL",
        ["01-01-2018 00:00:00", "30-03-2018 23:59:59"],
        [post(REPORT, report_example().replace('"respuesta_cliente":"SI"', '"respuesta_cliente":"NULL"'))],
        [],
    ),
    QueryCase(
        "HTTP 500 is retryable",
        ["01-01-2018 00:00:00", "30-03-2018 23:59:59"],
        [post(REPORT, "", status=500)],
        error=VendorRetryable,
    ),
]
# getMsg answers carry replies too (respuesta).
GETMSG_MO_CASES = [
    QueryCase(
        "manual getMsg: respuesta",
        [["455121"]],
        [post(GET, GOT, get_form())],
        [Inbound("+525554542570", "Si", vendor_id="455121", at="2017-08-12 17:40:41")],
    ),
    QueryCase(
        "respuesta null: no reply",
        [["455121"]],
        [post(GET, GOT.replace('"respuesta":"Si"', '"respuesta":null'))],
        [],
    ),
    QueryCase("manual getMsg: code -101", [["455121"]], [post(GET, GET_ERRORS["-101"])], error=VendorAccountError),
]


@pytest.mark.parametrize("case", MO_CASES, ids=lambda c: c.label)
def test_replies(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, smsclick.build_replies, smsclick.parse_replies, case, caplog)


@pytest.mark.parametrize("case", GETMSG_MO_CASES, ids=lambda c: c.label)
def test_replies_in_getmsg(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, smsclick.build_status, smsclick.parse_replies, case, caplog)


BALANCE_CASES = [
    QueryCase(
        "manual (PHP credits)",
        [],
        [post(CREDITS, CREDITS_OK, {"APIKEY": APIKEY})],
        Balance(1200232.0),
    ),
    QueryCase(
        "no creditos is retryable",
        [],
        [post(CREDITS, '{"codigo":1, "descripcion":"ok"}')],
        error=VendorRetryable,
    ),
    QueryCase("not JSON is retryable", [], [post(CREDITS, "ok")], error=VendorRetryable),
    QueryCase("an undocumented code is retryable", [], [post(CREDITS, '{"codigo":-7}')], error=VendorRetryable),
]
BALANCE_CASES += [
    QueryCase(f"manual credits: code {code}", [], [post(CREDITS, body)], error=DOCUMENTED_QUERY[code])
    for code, body in CREDITS_ERRORS.items()
]


@pytest.mark.parametrize("case", BALANCE_CASES, ids=lambda c: c.label)
def test_balance(case: QueryCase, caplog: pytest.LogCaptureFixture) -> None:
    run_query_case(ACCOUNT, smsclick.build_balance, smsclick.parse_balance, case, caplog)


def test_every_documented_code_has_a_case() -> None:
    assert set(DOCUMENTED_SEND) | set(DOCUMENTED_QUERY) == set(smsclick.codes)
    assert set(SEND_ERRORS) | {"1"} == set(DOCUMENTED_SEND)
    assert set(GET_ERRORS) | set(REPORT_ERRORS) | set(CREDITS_ERRORS) == set(DOCUMENTED_QUERY)


@pytest.mark.parametrize("code", sorted(DOCUMENTED_SEND))
def test_send_codes_match_the_table(code: str) -> None:
    assert smsclick.codes[code].outcome == DOCUMENTED_SEND[code]


def test_the_report_fixture_is_the_manual_text() -> None:
    assert json.loads(report_example())["mensajes"][0]["nombre_campania"] == "CAMPAÑA MERCADO LIBRE 2017"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"ID_REGLA_INTERACTIVA": " "}, "ID_REGLA_INTERACTIVA"),
        ({"ID_REGLA_INTERACTIVA": True}, "ID_REGLA"),
        ({"encode": True}, "encode"),
    ],
)
def test_bad_options_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        smsclick.validate_options(options)


def test_text_limit_is_three_credits() -> None:
    assert smsclick.text_limit("á" * 10, {}) == 450


def test_a_getmsg_answer_needs_its_request() -> None:
    # Given a getMsg answer built by hand, without the request that names the id
    response = httpx.Response(200, content=GOT.encode())
    # Then it cannot be read, rather than reported under no id
    with pytest.raises(ValueError, match="getMsg"):
        smsclick.parse_status(response)


def test_a_number_outside_mexico_is_refused_before_any_request() -> None:
    recipient = Recipient(1, "+13055550123", TEXT)
    assert "Mexican numbers" in (smsclick.check_recipient(recipient, {}) or "")
    assert smsclick.check_recipient(Recipient(1, "+525526632636", TEXT), {}) is None
    with pytest.raises(ValueError, match="Mexican numbers"):
        smsclick.build_send(ACCOUNT, Outgoing([recipient]))
