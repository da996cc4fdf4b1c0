"""The IT Cloud simulator answers the manual's examples as the manual does (seeds/001)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from dispatcher.sandbox.core import Faults
from dispatcher.sandbox.itcloud import ItCloudSim
from dispatcher.sandbox.messages import Progress
from tests.conftest import BOGOTA_10AM, BOGOTA_2130
from tests.manuals.itcloud import FOUR_GSM, FOUR_REPLY, TEXT, TOKEN, USER, WEB_GSM
from tests.sandbox.harness import Box, Boxes


@pytest.fixture
def itcloud(boxes: Boxes) -> Box:
    return boxes.start(ItCloudSim, BOGOTA_10AM, Progress(reply_rate=1.0, stop_rate=1.0, reply_after=5.0))


def send(box: Box, gsm: str, text: str = TEXT, **extra: str) -> str:
    form = {"user": USER, "token": TOKEN, "GSM": gsm, "SMSText": text, **extra}
    return box.http.post("/api/sendsms", data=form).text


def test_the_manual_four_number_example(itcloud: Box) -> None:
    # Given credit for exactly one message, as in the manual's fourth line
    itcloud.sim.add_customer(USER, TOKEN, credit=1)
    body = send(itcloud, FOUR_GSM)
    # Then it gets the manual's reply, its id included
    assert body.splitlines() == FOUR_REPLY.splitlines()
    assert itcloud.sim.ledger.sends == {"+584142871901": 1}


def test_the_manual_web_example_also_works_as_a_get(itcloud: Box) -> None:
    itcloud.sim.add_customer(USER, TOKEN)
    params = {"user": USER, "token": TOKEN, "GSM": WEB_GSM, "SMSText": TEXT, "metodo_envio": "2via"}
    body = httpx.get(itcloud.server.url("itcloud") + "/api/sendsms", params=params).text
    assert body.startswith(f"{WEB_GSM},") and int(body.split(",")[1]) > 0


@pytest.mark.parametrize(
    ("setup", "gsm", "extra", "expected"),
    [
        ("bad token", "573117807125", {}, "-1"),
        ("ok", "573117807125", {"SMSText": ""}, "573117807125,-5"),
        ("ok", "573117807125", {"SMSText": "x" * 766}, "573117807125,-5"),
        ("ok", "573117807125", {"metodo_envio": "sms"}, "573117807125,-11"),
        ("ok", ",".join(["573117807125"] * 5001), {}, "-7"),
        ("blocked", "573117807125", {}, "573117807125,-8"),
        ("maintenance", "573117807125", {}, "573117807125,-6"),
    ],
)
def test_documented_errors(itcloud: Box, setup: str, gsm: str, extra: dict, expected: str) -> None:
    user = itcloud.sim.add_customer(USER, "other-token" if setup == "bad token" else TOKEN)
    if setup == "blocked":
        user.blocked.add("573117807125")
    itcloud.sim.faults = Faults(maintenance=setup == "maintenance")
    form = {"user": USER, "token": TOKEN, "GSM": gsm, "SMSText": TEXT, **extra}
    assert httpx.post(itcloud.server.url("itcloud") + "/api/sendsms", data=form).text == expected
    assert itcloud.sim.ledger.sends == {}


def test_outside_crc_hours_every_number_gets_minus_2(itcloud: Box) -> None:
    itcloud.sim.add_customer(USER, TOKEN)
    itcloud.clock.when = BOGOTA_2130
    assert send(itcloud, "573117807125,573102334455") == "573117807125,-2\n573102334455,-2"


def test_the_balance_query(itcloud: Box) -> None:
    itcloud.sim.add_customer(USER, TOKEN, credit=250, password="miclave")
    url = itcloud.server.url("itcloud") + "/query.php"
    assert httpx.get(url, params={"user": USER, "password": "miclave"}).text == "250"
    assert httpx.get(url, params={"user": USER, "password": "wrong"}).text == "-1"


def test_it_counts_what_the_manual_asks_not_to_do(itcloud: Box) -> None:
    itcloud.sim.add_customer(USER, TOKEN)
    send(itcloud, ",".join(f"57300{i:07d}" for i in range(1001)))
    send(itcloud, "573117807125")
    assert len(itcloud.sim.ledger.violations) == 2
    assert "1001 numbers" in itcloud.sim.ledger.violations[0]
    assert "apart" in itcloud.sim.ledger.violations[1]


def test_a_reply_to_a_2via_message_is_pushed_to_the_customer(itcloud: Box, customer: Any) -> None:
    # Given a customer URL on loopback
    itcloud.sim.add_customer(
        USER, TOKEN, callback_url=f"http://127.0.0.1:{customer.server_address[1]}/recepcionsms"
    )
    send(itcloud, "573152338956", metodo_envio="2via")
    # When the reply's time comes
    assert itcloud.pushes.run_due() == 0
    itcloud.clock.advance(6)
    assert itcloud.pushes.run_due() == 1
    # Then it arrived as GET mensaje, celular, with a stop word (stop_rate 1.0)
    got = customer.paths
    assert got[0].startswith("/recepcionsms?mensaje=")
    assert any(word in got[0] for word in ("SALIR", "STOP", "BAJA")) and got[0].endswith("celular=573152338956")


def test_messages_progress_by_the_sandbox_clock(itcloud: Box) -> None:
    itcloud.sim.add_customer(USER, TOKEN)
    vendor_id = send(itcloud, "573117807125").split(",")[1]
    message = itcloud.sim.store.get(vendor_id)
    assert itcloud.sim.store.state(message, itcloud.clock.now()) == "queued"
    later = itcloud.clock.now() + timedelta(seconds=10)
    assert itcloud.sim.store.state(message, later) in ("delivered", "failed")
