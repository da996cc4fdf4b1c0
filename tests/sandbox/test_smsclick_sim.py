"""The SMSClick sandbox over loopback HTTP: the manual's (seeds/002) examples get the manual's answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dispatcher.errors import VendorAccountError, VendorRejectedRequest
from dispatcher.sandbox.core import Faults
from dispatcher.sandbox.messages import REPLY_WORDS, STOP_WORDS, Progress
from dispatcher.sandbox.smsclick import SmsclickSim
from dispatcher.vendors import smsclick
from dispatcher.vendors.base import Account, DeliveryState, Inbound, Outcome, Outgoing, Recipient, Result
from tests.manuals import smsclick as manual
from tests.manuals.smsclick import APIKEY, CREDITS, GET, PROMO, RANGE, REPORT, SEND, TEXT
from tests.sandbox.harness import Box as Running
from tests.sandbox.harness import Boxes

NOON = datetime(2018, 1, 15, 18, 0, tzinfo=UTC)  # 12:00 in Mexico City, inside the manual's report range
SENT_AT = "15-01-2018 12:00:00"
RULE = "77"


def by_code(answers: dict[str, str]) -> dict[int, str]:
    """The manual's answers keyed by their codigo as a number."""
    return {int(code): answer for code, answer in answers.items()}


SEND_ANSWERS = {1: manual.SENT} | by_code(manual.SEND_ERRORS)
GET_ANSWERS = by_code(manual.GET_ERRORS)
GET_KEYS = {"codigo", "descripcion", "estatus_mensaje", "telefono", "mensaje", "fecha_envio", "respuesta"}
GET_KEYS |= {"fecha_respuesta"}
REPORT_ANSWERS = by_code(manual.REPORT_ERRORS)
REPORT_ITEM_KEYS = {
    "id_mensaje",
    "telefono",
    "mensaje",
    "fecha_envio",
    "estatus_mensaje",
    "nombre_campania",
    "portafolio",
    "fecha_respuesta",
    "respuesta_cliente",
}
CREDITS_ANSWERS = {1: manual.CREDITS_OK} | by_code(manual.CREDITS_ERRORS)


@dataclass
class Box(Running):
    """The SMSClick simulator running, with the manual's requests and the project's account."""

    def post(self, path: str, **fields: str) -> dict[str, Any]:
        """POST a form as the manual's PHP examples do; return the JSON answer."""
        response = self.http.post(path, data=fields)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        return response.json()

    def send(self, telefono: str = "5526632636", mensaje: str = TEXT, **extra: str) -> dict[str, Any]:
        return self.post(SEND, APIKEY=APIKEY, TELEFONO=telefono, MENSAJE=mensaje, **extra)

    def get(self, vendor_id: int | str) -> dict[str, Any]:
        return self.post(GET, APIKEY=APIKEY, ID_MENSAJE=str(vendor_id))

    def account(self, apikey: str = APIKEY) -> Account:
        return Account(
            key="mx-click",
            vendor="smsclick",
            base_url=self.server.url("smsclick"),
            country="MX",
            params={"apikey": apikey},
            secret_fields=frozenset({"apikey"}),
        )


@pytest.fixture
def make(boxes: Boxes) -> Callable[..., Box]:
    """Start sandboxes with a progress, faults and one customer's settings."""

    def start(
        progress: Progress | None = None, faults: Faults | None = None, first_id: int = 123, **settings: Any
    ) -> Box:
        box = boxes.start(SmsclickSim, NOON, progress, faults, box=Box, first_id=first_id)
        box.sim.add_customer("mx-click", APIKEY, **{"credit": 1200232, "rules": (RULE,), **settings})
        return box

    return start


def test_send_the_manual_php_example(make: Callable[..., Box]) -> None:
    box = make()
    assert box.send() == json.loads(SEND_ANSWERS[1])
    assert dict(box.ledger.sends) == {"+525526632636": 1}
    message = box.sim.store.get("123")
    assert (message.phone, message.text, message.account) == ("+525526632636", TEXT, "mx-click")


@pytest.mark.parametrize(
    ("codigo", "fields"),
    [
        (-100, {"TELEFONO": "5526632636", "MENSAJE": TEXT}),
        (-100, {"APIKEY": "", "TELEFONO": "5526632636", "MENSAJE": TEXT}),
        (-101, {"APIKEY": "wrong", "TELEFONO": "5526632636", "MENSAJE": TEXT}),
        (-102, {"APIKEY": APIKEY, "MENSAJE": TEXT}),
        (-102, {"APIKEY": APIKEY, "TELEFONO": "55266326", "MENSAJE": TEXT}),
        (-102, {"APIKEY": APIKEY, "TELEFONO": "525526632636", "MENSAJE": TEXT}),
        (-102, {"APIKEY": APIKEY, "TELEFONO": "+525526632", "MENSAJE": TEXT}),
        (-102, {"APIKEY": APIKEY, "TELEFONO": "5526632636,5554542570", "MENSAJE": TEXT}),
        (-103, {"APIKEY": APIKEY, "TELEFONO": "5526632636"}),
        (-103, {"APIKEY": APIKEY, "TELEFONO": "5526632636", "MENSAJE": "   "}),
        (-105, {"APIKEY": APIKEY, "TELEFONO": "5526632636", "MENSAJE": TEXT, "ID_REGLA_INTERACTIVA": "999"}),
    ],
)
def test_send_errors_are_the_manual_answers(make: Callable[..., Box], codigo: int, fields: dict) -> None:
    box = make()
    assert box.post(SEND, **fields) == json.loads(SEND_ANSWERS[codigo])
    # A refused message costs nothing and is not sent
    assert box.sim.customers["mx-click"].credit == 1200232 and not box.ledger.sends


def test_credits_the_manual_example(make: Callable[..., Box]) -> None:
    box = make()
    assert box.post(CREDITS, APIKEY=APIKEY) == json.loads(CREDITS_ANSWERS[1])
    assert box.post(CREDITS) == json.loads(CREDITS_ANSWERS[-100])
    assert box.post(CREDITS, APIKEY="wrong") == json.loads(CREDITS_ANSWERS[-101])


@pytest.mark.parametrize(("length", "cost"), [(1, 1), (150, 1), (151, 2), (300, 2), (301, 3), (612, 5)])
def test_credits_are_charged_per_150_characters(make: Callable[..., Box], length: int, cost: int) -> None:
    box = make()
    assert box.send(mensaje="x" * length)["creditosUsados"] == cost
    assert box.post(CREDITS, APIKEY=APIKEY)["creditos"] == 1200232 - cost


def test_credits_run_out(make: Callable[..., Box]) -> None:
    # Given one credit left
    box = make(credit=1)
    # When a message needs two, it is refused with -104 and costs nothing
    assert box.send(mensaje="x" * 151) == json.loads(SEND_ANSWERS[-104])
    # Then a one-credit message goes, and the next is refused
    assert box.send()["codigo"] == 1
    assert box.send() == json.loads(SEND_ANSWERS[-104])
    assert box.post(CREDITS, APIKEY=APIKEY)["creditos"] == 0
    assert sum(box.ledger.sends.values()) == 1 and len(box.sim.store.messages) == 1


def test_getmsg_the_manual_example(make: Callable[..., Box]) -> None:
    # Given the manual's message, sent with an interactive rule, under the manual's id 455121
    box = make(first_id=455121)
    assert box.send("5554542570", PROMO, ID_REGLA_INTERACTIVA=RULE)["id_mensaje"] == 455121
    # When the manual's request asks for it
    answer = box.get(455121)
    # Then the answer has the manual's fields
    assert set(answer) == GET_KEYS
    assert answer == {
        "codigo": 1,
        "descripcion": "ok",
        "estatus_mensaje": 0,
        "telefono": 5554542570,
        "mensaje": PROMO,
        "fecha_envio": SENT_AT,
        "respuesta": None,  # interactive, not answered yet
        "fecha_respuesta": None,
    }


@pytest.mark.parametrize(
    ("codigo", "fields"),
    [
        (-100, {"ID_MENSAJE": "123"}),
        (-101, {"APIKEY": "wrong", "ID_MENSAJE": "123"}),
        (-200, {"APIKEY": APIKEY}),
        (-200, {"APIKEY": APIKEY, "ID_MENSAJE": "abc"}),
        (-200, {"APIKEY": APIKEY, "ID_MENSAJE": "-5"}),
        (-201, {"APIKEY": APIKEY, "ID_MENSAJE": "455121"}),
    ],
)
def test_getmsg_errors_are_the_manual_answers(make: Callable[..., Box], codigo: int, fields: dict) -> None:
    box = make()
    box.send()
    assert box.post(GET, **fields) == json.loads(GET_ANSWERS[codigo])


def test_another_account_cannot_read_our_messages(make: Callable[..., Box]) -> None:
    box = make()
    box.sim.add_customer("other", "other-key")
    box.send()
    assert box.post(GET, APIKEY="other-key", ID_MENSAJE="123") == json.loads(GET_ANSWERS[-201])
    assert box.post(REPORT, APIKEY="other-key", **RANGE)["mensajes"] == []


@pytest.mark.parametrize(("delivered_rate", "final"), [(1.0, 3), (0.0, 4)])
def test_statuses_progress_with_the_clock(make: Callable[..., Box], delivered_rate: float, final: int) -> None:
    # Given a message queued 2 s, then sent 3 s more
    box = make(Progress(to_sent=2, to_final=5, delivered_rate=delivered_rate))
    box.send()
    # Then its status goes pendiente, en proceso, enviado, then recibido or rechazado
    seen = []
    for step in (0, 1.5, 1.0, 3.0):
        box.clock.advance(step)
        seen.append(box.get(123)["estatus_mensaje"])
    assert seen == [0, 1, 2, final]
    assert box.get(123)["respuesta"] == "NULL"  # not interactive: the manual's "NULL"


@pytest.mark.parametrize(("stop_rate", "words"), [(1.0, STOP_WORDS), (0.0, REPLY_WORDS)])
def test_interactive_messages_draw_replies(make: Callable[..., Box], stop_rate: float, words: tuple) -> None:
    # Given every interactive message answered 6 s after it was sent
    box = make(Progress(reply_rate=1.0, stop_rate=stop_rate, reply_after=6))
    box.send("5554542570", PROMO, ID_REGLA_INTERACTIVA=RULE)
    box.send("5526632636", TEXT)  # not interactive: no reply
    assert box.get(123)["respuesta"] is None
    # When 6 s pass
    box.clock.advance(6)
    # Then getMsg and the report carry the reply and its date
    answer = box.get(123)
    assert answer["respuesta"] in words and answer["fecha_respuesta"] == "15-01-2018 12:00:06"
    assert box.get(124)["respuesta"] == "NULL"
    report = box.post(REPORT, APIKEY=APIKEY, **RANGE)["mensajes"]
    assert [(m["id_mensaje"], m["respuesta_cliente"]) for m in report] == [
        (123, answer["respuesta"]),
        (124, "NULL"),
    ]


def test_report_the_manual_example(make: Callable[..., Box]) -> None:
    # Given two messages in the manual's date range, in the account's API campaign
    box = make(Progress(to_sent=2, to_final=5, delivered_rate=1.0), campaign_id=88, campaign_name="API")
    box.send("5548007276", "MERCADOLIBRE: Responda SI para utilizar su puntos premia en su compra de $1,500")
    box.clock.advance(10)
    box.send()
    # When the manual's request asks for the range
    answer = box.post(REPORT, APIKEY=APIKEY, **RANGE)
    # Then the answer has the manual's fields
    assert (answer["codigo"], answer["descripcion"]) == (1, "ok")
    first = answer["mensajes"][0]
    assert set(first) == REPORT_ITEM_KEYS
    assert (first["id_mensaje"], first["telefono"], first["fecha_envio"]) == (123, 5548007276, SENT_AT)
    assert (first["estatus_mensaje"], first["nombre_campania"]) == (3, "API")
    # And its filters: status, campaign, dates
    assert report_ids(box, ESTATUS_MENSAJE="2,3,4", **RANGE) == [123]
    assert report_ids(box, ESTATUS_MENSAJE="0", **RANGE) == [124]
    assert report_ids(box, ID_CAMPANIA="88", **RANGE) == [123, 124]
    assert report_ids(box, ID_CAMPANIA="89", **RANGE) == []
    assert report_ids(box, FECHA_INICIO="15-01-2018 12:00:05", FECHA_FIN="15-01-2018 23:59:59") == [124]


def report_ids(box: Box, **fields: str) -> list[int]:
    return [m["id_mensaje"] for m in box.post(REPORT, APIKEY=APIKEY, **fields)["mensajes"]]


@pytest.mark.parametrize(
    ("codigo", "fields"),
    [
        (-100, RANGE),
        (-101, {"APIKEY": "wrong", **RANGE}),
        (-300, {"APIKEY": APIKEY, "FECHA_FIN": RANGE["FECHA_FIN"]}),
        (-300, {"APIKEY": APIKEY, **RANGE, "FECHA_INICIO": "2018-01-01 00:00:00"}),
        (-301, {"APIKEY": APIKEY, "FECHA_INICIO": RANGE["FECHA_INICIO"]}),
        (-301, {"APIKEY": APIKEY, **RANGE, "FECHA_FIN": "30-03-2018"}),
        (-302, {"APIKEY": APIKEY, **RANGE, "ESTATUS_MENSAJE": "5"}),
        (-302, {"APIKEY": APIKEY, **RANGE, "ESTATUS_MENSAJE": "2;3"}),
        (-303, {"APIKEY": APIKEY, **RANGE, "ID_CAMPANIA": "abc"}),
    ],
)
def test_report_errors_are_the_manual_answers(make: Callable[..., Box], codigo: int, fields: dict) -> None:
    assert make().post(REPORT, **fields) == json.loads(REPORT_ANSWERS[codigo])


@pytest.mark.parametrize(("method", "path"), [("POST", "/sms-services/nothing.json"), ("GET", SEND)])
def test_unknown_routes_are_404(make: Callable[..., Box], method: str, path: str) -> None:
    assert make().http.request(method, path.lstrip("/")).status_code == 404


def test_faults(make: Callable[..., Box]) -> None:
    assert make(faults=Faults(error_rate=1.0)).http.post(SEND, data={"APIKEY": APIKEY}).status_code == 500
    malformed = make(faults=Faults(malformed_rate=1.0)).http.post(CREDITS, data={"APIKEY": APIKEY})
    assert malformed.status_code == 200 and malformed.text.startswith("<html>")
    box = make(faults=Faults(maintenance=True))
    response = box.http.post(SEND, data={"APIKEY": APIKEY, "TELEFONO": "5526632636", "MENSAJE": TEXT})
    assert response.status_code == 503 and not box.ledger.sends


class Adapter:
    """The project's smsclick adapter driven over real HTTP against the sandbox."""

    def __init__(self, account: Account):
        self.account = account
        self.client = httpx.Client(timeout=5.0)

    def send(self, batch: Outgoing) -> list[Result]:
        """Refuse what check_recipient refuses, as the sender does, and send the rest."""
        results = []
        for r in batch.recipients:
            why = smsclick.check_recipient(r, batch.options)
            if why:
                results.append(Result(r.message_id, Outcome.REJECTED, reason=why))
                continue
            for sent in smsclick.build_send(self.account, Outgoing([r], batch.options)):
                results += smsclick.parse_send(self.account, sent, self.client.send(sent.request))
        return results

    def run(self, request: httpx.Request) -> httpx.Response:
        return self.client.send(request)


@pytest.fixture
def adapter_for() -> Iterator[Callable[[Box], Adapter]]:
    adapters: list[Adapter] = []

    def build(box: Box, apikey: str = APIKEY) -> Adapter:
        adapters.append(Adapter(box.account(apikey)))
        return adapters[-1]

    yield build
    for adapter in adapters:
        adapter.client.close()


@pytest.mark.parametrize(
    ("delivered_rate", "final"), [(1.0, DeliveryState.DELIVERED), (0.0, DeliveryState.FAILED)]
)
def test_round_trip_with_the_adapter(
    make: Callable[..., Box], adapter_for: Callable[..., Adapter], delivered_rate: float, final: DeliveryState
) -> None:
    # Given the sandbox and the project's adapter
    box = make(Progress(delivered_rate=delivered_rate, reply_rate=1.0, stop_rate=1.0, reply_after=6))
    adapter = adapter_for(box)
    batch = Outgoing(
        [
            Recipient(1, "+525526632636", TEXT),
            Recipient(2, "+13055550123", TEXT),
            Recipient(3, "+525554542570", PROMO),
        ],
        {"ID_REGLA_INTERACTIVA": 77},
    )
    # When it sends: one request per Mexican number, the US number never sent
    results = {r.message_id: r for r in adapter.send(batch)}
    assert [(results[i].outcome, results[i].vendor_id) for i in (1, 2, 3)] == [
        (Outcome.ACCEPTED, "123"),
        (Outcome.REJECTED, None),
        (Outcome.ACCEPTED, "124"),
    ]
    assert set(box.ledger.sends) == {"+525526632636", "+525554542570"}
    assert smsclick.parse_balance(adapter.run(smsclick.build_balance(adapter.account))).credit == 1200230
    # Then statuses follow the clock
    requests = smsclick.build_status_requests(adapter.account, ["123", "124"])
    assert {s.state for q in requests for s in smsclick.parse_status(adapter.run(q))} == {DeliveryState.QUEUED}
    box.clock.advance(10)
    reports = [s for q in requests for s in smsclick.parse_status(adapter.run(q))]
    assert [(s.vendor_id, s.state, s.phone) for s in reports] == [
        ("123", final, "+525526632636"),
        ("124", final, "+525554542570"),
    ]
    assert reports[0].at == "2018-01-15 12:00:00"
    # And the replies come back through getMsg and the report (a handset that got nothing answers nothing)
    if final is DeliveryState.FAILED:
        assert smsclick.parse_replies(adapter.run(requests[0])) == []
        return
    [inbound] = smsclick.parse_replies(adapter.run(requests[0]))
    assert inbound.text in STOP_WORDS
    assert inbound == Inbound("+525526632636", inbound.text, vendor_id="123", at="2018-01-15 12:00:06")
    report = smsclick.build_replies(adapter.account, datetime(2018, 1, 1), datetime(2018, 3, 30, 23, 59, 59))
    assert [i.vendor_id for i in smsclick.parse_replies(adapter.run(report))] == ["123", "124"]


def test_round_trip_errors(make: Callable[..., Box], adapter_for: Callable[..., Adapter]) -> None:
    box = make(credit=1)
    adapter = adapter_for(box)
    one = Outgoing([Recipient(1, "+525526632636", TEXT)])
    assert [r.outcome for r in adapter.send(one)] == [Outcome.ACCEPTED]
    # No balance pauses the account; an unknown rule is refused for good
    [no_balance] = adapter.send(Outgoing([Recipient(2, "+525526632636", TEXT)]))
    assert (no_balance.outcome, no_balance.code) == (Outcome.PAUSE_ACCOUNT, "-104")
    [unknown_rule] = adapter.send(Outgoing([Recipient(3, "+525526632636", TEXT)], {"ID_REGLA_INTERACTIVA": "9"}))
    assert (unknown_rule.outcome, unknown_rule.code) == (Outcome.REJECTED, "-105")
    # A wrong key pauses the account; a message id that does not exist is a rejected request
    with pytest.raises(VendorAccountError):
        smsclick.parse_balance(adapter.run(smsclick.build_balance(box.account("wrong"))))
    with pytest.raises(VendorRejectedRequest):
        smsclick.parse_status(adapter.run(smsclick.build_status(adapter.account, ["999"])))
    [bad_key] = adapter_for(box, "wrong").send(one)
    assert (bad_key.outcome, bad_key.code) == (Outcome.PAUSE_ACCOUNT, "-101")
