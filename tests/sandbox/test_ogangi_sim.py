"""The ogangi sandbox over loopback HTTP: the manual's (seeds/004) examples get the manual's answers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from dispatcher.sandbox.core import Faults
from dispatcher.sandbox.messages import STOP_WORDS, Progress
from dispatcher.sandbox.ogangi import OgangiSim
from dispatcher.sandbox.ogangi_wire import sign
from dispatcher.vendors import ogangi
from dispatcher.vendors.base import Account, DeliveryState, Inbound, Outcome, Outgoing, Recipient, StatusReport
from tests.manuals import sample
from tests.manuals.ogangi import (
    FIRE_TEXT,
    LONG,
    MANUAL_ID,
    MOBILE,
    MOBILE64,
    PIN_TEXT,
    PRIVATE_KEY,
    PUBLIC_KEY,
    SEND_SMS_CALL,
    SIGNATURE_EXAMPLE,
    TEXT,
    TEXT64,
)
from tests.sandbox.harness import Box, Boxes

SHORT = "19893143924"  #: the workspace's short code, beside the manual's long one
SEND_SMS_DATE = datetime(2013, 9, 17, 14, 43, 59, 176000, tzinfo=UTC)  # 10:13:59.176-04:30 in Caracas
MO_DATE = datetime(2014, 10, 13, 15, 0, 51, 922000, tzinfo=UTC)  # 10:30:51.922 in Caracas
SEND_SMS_PATH = "/rest/api/" + SEND_SMS_CALL  # the manual's call signed by hand, not by the sandbox


def fixture(name: str) -> str:
    return sample("ogangi", name).strip()


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def signed(
    method: str, *values: str, instance: str = "8", key: str = PRIVATE_KEY, public: str = PUBLIC_KEY
) -> str:
    """The path of a call, signed here with hmac so the test does not reuse the sandbox's code."""
    message = "/".join((instance, *values))
    signature = hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return f"/rest/api/{method}/{message}/{public}/{signature}"


def envelope(method: str, status: str, description: str) -> str:
    return f"<input>{method}</input> <status>{status}</status> <description>{description}</description>"


@dataclass
class Sandbox(Box):
    """The ogangi simulator running."""

    def get(self, path: str) -> str:
        response = self.http.get(path)
        assert response.status_code == 200
        return response.text


@pytest.fixture
def make(boxes: Boxes) -> Callable[..., Sandbox]:
    """The simulator on loopback with the manual's workspace 8 (its keys, codes and client id)."""

    def start(
        progress: Progress | None = None, faults: Faults | None = None, callback_url: str = "", credit: int = 100
    ) -> Sandbox:
        progress = progress or Progress(delivered_rate=1.0, reply_rate=0.0)
        box = boxes.start(OgangiSim, SEND_SMS_DATE, progress, faults, box=Sandbox)
        box.sim.add_customer(
            PUBLIC_KEY, PRIVATE_KEY, credit, callback_url, instance_id="8", codes=(SHORT, LONG),
            carriers=("Movistar", "carrierName"), keywords=("^OGANGI.*",),
        )  # fmt: skip
        box.sim.add_customer("pk-43", "private-43", instance_id="43")
        return box

    return start


@pytest.fixture
def box(make: Callable[..., Sandbox]) -> Sandbox:
    return make()


def test_the_signature_test_vector() -> None:
    assert sign(SIGNATURE_EXAMPLE[0], PRIVATE_KEY) == (SIGNATURE_EXAMPLE[1])


def test_manual_send_sms_gets_the_manuals_reply(box: Sandbox) -> None:
    # Given the manual's tools/sendSMS call at the moment of the manual's example
    body = box.get(SEND_SMS_PATH)
    # Then the reply is the manual's, under a fresh negative long id
    new_id = re.search(r"<id>(-\d+)</id>", body)
    assert new_id is not None and -(2**63) <= int(new_id[1]) < 0
    assert body == fixture("sendSMS.xml").replace(MANUAL_ID, new_id[1])
    # And the message is accepted, charged and counted
    assert box.sim.store.get(new_id[1]).text == TEXT  # type: ignore[union-attr]
    assert box.ledger.sends == {"+13056708084": 1} and box.sim.customers[PUBLIC_KEY].credit == 99


@pytest.mark.parametrize("flags", [(), ("urgent",)], ids=["plain", "with flags"])
def test_manual_send_mt_gets_the_bare_envelope(box: Sandbox, flags: tuple[str, ...]) -> None:
    body = box.get(signed("sendMT", LONG, "null", MOBILE, TEXT64, *flags))
    assert body == fixture("sendMT.xml")
    assert box.ledger.sends == {"+13056708084": 1}


@pytest.mark.parametrize(
    "path",
    [
        SEND_SMS_PATH[:-1] + "0",
        SEND_SMS_PATH.replace(PUBLIC_KEY, "unknownKey"),
        signed("tools/sendSMS", "carrierName", LONG, MOBILE64, TEXT64, key="another-private-key"),
        signed("tools/sendSMS", "carrierName", LONG, MOBILE64, TEXT64, instance="43"),
        SEND_SMS_PATH.replace(TEXT64, b64("OGANGI TEST MESSAGF")),
        signed("tools/sendSMS", "carrierName", LONG, MOBILE64, TEXT64, public="pk-43"),
    ],
    ids=["bad signature", "unknown public key", "other private key", "other instance", "tampered text",
         "other workspace's key"],
)  # fmt: skip
def test_bad_signature(box: Sandbox, path: str) -> None:
    body = box.get(path)
    assert body == envelope("sendSMS", "BAD_SIGNATURE", "Invalid signature, access denied")
    assert not box.ledger.sends


REFUSED = {
    "BAD_FROM": "Message not sent: invalid 'from'",
    "BAD_CARRIER/FROM": "Message not sent: invalid 'carrier' or 'from'",
    "BAD_TO": "Message not sent: invalid 'to'",
    "BAD_ENCODING": "Message not sent: invalid encoding",
    "NOT_SENT": "The message could not be sent: empty text",
}


@pytest.mark.parametrize(
    ("values", "word"),
    [
        (("carrierName", "4242", MOBILE64, TEXT64), "BAD_FROM"),
        (("Digitel", LONG, MOBILE64, TEXT64), "BAD_CARRIER/FROM"),
        (("carrierName", LONG, b64("peter"), TEXT64), "BAD_TO"),
        (("carrierName", LONG, MOBILE, TEXT64), "BAD_TO"),
        (("carrierName", LONG, MOBILE64, "notbase64"), "BAD_ENCODING"),
        (("carrierName", LONG, MOBILE64, "__4="), "BAD_ENCODING"),
        (("carrierName", LONG, MOBILE64, ""), "NOT_SENT"),
    ],
    ids=["from", "carrier", "mobile not a number", "mobile not base64", "text not base64", "text not UTF-8",
         "empty text"],
)  # fmt: skip
def test_message_refusals_carry_their_status_word(box: Sandbox, values: tuple[str, ...], word: str) -> None:
    body = box.get(signed("tools/sendSMS", *values))
    assert "<status>OK</status>" in body
    assert f"<status>{word}</status> <statusDescription>{REFUSED[word]}</statusDescription>" in body
    assert not box.ledger.sends and box.sim.customers[PUBLIC_KEY].credit == 100


def test_balance_runs_out(box: Sandbox) -> None:
    # Given a workspace with credit for one message
    box.sim.customers[PUBLIC_KEY].credit = 1
    assert "<status>SENT_TO_CARRIER</status>" in box.get(SEND_SMS_PATH)
    # When it sends again, by each method
    send_sms = box.get(SEND_SMS_PATH)
    send_mt = box.get(signed("sendMT", LONG, "null", MOBILE, TEXT64))
    pin = box.get(signed("tools/sendSMSPinMobileNumberConfirm", "carrierName", LONG, MOBILE, TEXT64, "6"))
    # Then sendSMS says NOT_ENOUGH_FUNDS; the others, which have no message to say it in, ERROR
    assert "<status>NOT_ENOUGH_FUNDS</status> <statusDescription>Message not sent: not enough funds" in send_sms
    refusal = "NOT_ENOUGH_FUNDS: Message not sent: not enough funds"
    assert send_mt == envelope("sendMT", "ERROR", refusal)
    assert pin == envelope("sendSMSPinMobileNumberConfirm", "ERROR", refusal)
    assert box.ledger.sends == {"+13056708084": 1}


def test_unknown_methods_and_shapes(box: Sandbox) -> None:
    assert box.http.get("/rest/api/tools/sendPush/8/x/y").status_code == 404
    assert box.http.get(SEND_SMS_PATH.replace("/carrierName", "")).status_code == 404
    assert box.http.post(SEND_SMS_PATH).status_code == 405


def test_manual_pin_example(box: Sandbox) -> None:
    body = box.get(signed("tools/sendSMSPinMobileNumberConfirm", "carrierName", LONG, MOBILE, b64(PIN_TEXT), "6"))
    pin = re.search(r"<pin>(\d{6})</pin>", body)
    assert pin is not None
    assert body == fixture("sendSMSPinMobileNumberConfirm.xml").replace("846547", pin[1])
    [message] = box.sim.store.messages.values()
    assert message.text == f"Tu código es {pin[1]}" and message.phone == "+13056708084"


@pytest.mark.parametrize("length", ["0", "x", "13"])
def test_pin_length_must_be_a_small_number(box: Sandbox, length: str) -> None:
    body = box.get(signed("tools/sendSMSPinMobileNumberConfirm", "carrierName", LONG, MOBILE, TEXT64, length))
    assert body == envelope("sendSMSPinMobileNumberConfirm", "ERROR", f"Invalid length '{length}'")


def test_manual_fire_message_example(box: Sandbox) -> None:
    # The GET example prints activateCampaign (a slip); the answer is its POST twin's
    text = b64(FIRE_TEXT)
    body = box.get(signed("fireMessage", "1200000001", text, instance="43", key="private-43", public="pk-43"))
    assert body == fixture("fireMessage.xml").replace("activateCampaign", "fireMessage")


def test_manual_get_mo_messages_example(box: Sandbox) -> None:
    # Given the manual's 17 MOs 'Test' from 58123456789 to our short code
    box.clock.when = MO_DATE
    for _ in range(17):
        assert "<status>OK</status>" in box.get(signed("fireMessage", "58123456789", b64("Test")))
    # When the first of them is asked for with the manual's filters (from= left out: the manual's
    # filter names a number its own example row does not have)
    search = "to=19893143924&keyword=%5EOGANGI.*&carrier=movistar&order=desc"
    body = box.get(signed("tools/getMOMessages", "0", "1", search))
    # Then the answer is the manual's (its <MOMessageList> closed)
    assert body == fixture("getMOMessages.xml")


def test_replies_are_paged_and_filtered(make: Callable[..., Sandbox]) -> None:
    box = make(Progress(delivered_rate=1.0, reply_rate=1.0, stop_rate=0.0))
    for n in range(3):
        box.get(signed("tools/sendSMS", "carrierName", LONG, b64(f"1305670808{n}"), TEXT64))
        box.clock.advance(1)
    box.get(signed("fireMessage", "584121234567", b64("OGANGI quiero")))

    def froms(page: str, per_page: str, search: str) -> list[str]:
        return re.findall(r"<from>(\d+)</from>", box.get(signed("tools/getMOMessages", page, per_page, search)))

    assert froms("0", "10", "order=asc") == ["584121234567"]  # the replies have not arrived yet
    box.clock.advance(6)
    # The fired MO (at +3 s) comes before the replies (+6 s on) in ascending order
    assert froms("0", "2", "order=asc") == ["584121234567", "13056708080"]
    assert froms("1", "2", "order=asc") == ["13056708081", "13056708082"]
    assert froms("2", "2", "order=asc") == []
    assert froms("0", "10", "order=desc&from=13056708080,584121234567") == ["13056708080", "584121234567"]
    assert froms("0", "10", f"to={SHORT}") == ["584121234567"]
    assert froms("0", "10", f"to={LONG}&carrier=CARRIERNAME") == [
        "13056708080",
        "13056708081",
        "13056708082",
    ]
    body = box.get(signed("tools/getMOMessages", "0", "10", "order=asc"))
    assert "<records>4</records>" in body
    for search in ["date=today", "keyword=%28", "nonsense"]:
        assert "<status>ERROR</status>" in box.get(signed("tools/getMOMessages", "0", "10", search))
    assert "<status>ERROR</status>" in box.get(signed("tools/getMOMessages", "0", "0", "order=asc"))


def test_callbacks_follow_the_clock_and_stop_words_are_counted(
    make: Callable[..., Sandbox], customer: ThreadingHTTPServer
) -> None:
    # Given a workspace with a callback URL, whose messages are all delivered and answered STOP
    url = f"http://127.0.0.1:{customer.server_address[1]}/messangi/callback"
    box = make(Progress(delivered_rate=1.0, reply_rate=1.0, stop_rate=1.0), callback_url=url)
    received: list[dict[str, str]] = customer.received  # type: ignore[attr-defined]
    vendor_id = re.findall(r"<id>(-\d+)</id>", box.get(SEND_SMS_PATH))[0]
    report = {"TYPE": "SMS", "CLIENT_ID": "As223sdadq8d8287v5v", "MESSANGI_ID": vendor_id}
    report |= {"FROM": LONG, "TO": MOBILE, "MESSAGE_BODY": TEXT}
    # When the clock moves, Then each change is POSTed when it happens
    assert box.pushes.run_due() == 0
    box.clock.advance(2)
    assert box.pushes.run_due() == 1 and received[-1] == {**report, "STATUS": "DELIVERED_TO_CARRIER"}
    box.clock.advance(3)
    assert box.pushes.run_due() == 1 and received[-1] == {**report, "STATUS": "DELIVERED_TO_DEVICE"}
    box.clock.advance(1)
    assert box.pushes.run_due() == 1
    reply = {"FROM": MOBILE, "TO": LONG, "ENCODING": "UTF-8", "TYPE": "MO_MESSAGE"}
    assert received[-1]["TEXT"] in STOP_WORDS
    assert received[-1] == {**reply, "TEXT": received[-1]["TEXT"]}
    assert [status for _, status in box.pushes.sent] == [200, 200, 200]
    # And sending to the handset that said stop is a violation
    box.get(SEND_SMS_PATH)
    assert box.ledger.violations == ["ogangi 8: sent to +13056708084 after it answered STOP"]
    # And a fired MO is pushed at once
    box.get(signed("fireMessage", "584121234567", b64("Hola")))
    assert box.pushes.run_due() == 1
    assert received[-1] == {**reply, "FROM": "584121234567", "TO": SHORT, "TEXT": "Hola"}


@pytest.mark.parametrize(
    ("faults", "status", "body"),
    [
        (Faults(error_rate=1.0), 500, "Internal Server Error"),
        (Faults(malformed_rate=1.0), 200, "<html><body>Service Unavailable</body></html>"),
        (
            Faults(maintenance=True),
            200,
            envelope("sendSMS", "ERROR", "Service under maintenance, try again later"),
        ),
    ],
    ids=["error", "malformed", "maintenance"],
)
def test_faults(make: Callable[..., Sandbox], faults: Faults, status: int, body: str) -> None:
    box = make(faults=faults)
    response = box.http.get(SEND_SMS_PATH)
    assert (response.status_code, response.text) == (status, body)
    assert not box.ledger.sends


def account(box: Sandbox, **params: str) -> Account:
    return Account(
        key="ve-main",
        vendor="ogangi",
        base_url=box.server.url("ogangi"),
        country="VE",
        params={
            "instance_id": "8",
            "public_key": PUBLIC_KEY,
            "private_key": PRIVATE_KEY,
            "from": LONG,
            **params,
        },
        secret_fields=frozenset({"private_key"}),
    )


def send(acct: Account, phone: str, options: dict[str, str] | None = None) -> list[Any]:
    batch = Outgoing([Recipient(1, phone, TEXT)], ogangi.validate_options(options or {}))
    [sent] = ogangi.build_send(acct, batch)
    return ogangi.parse_send(acct, sent, httpx.Client().send(sent.request))


def test_round_trip_through_the_adapter(make: Callable[..., Sandbox], customer: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{customer.server_address[1]}/messangi/callback"
    box = make(Progress(delivered_rate=1.0, reply_rate=1.0, stop_rate=0.0), callback_url=url)
    received: list[dict[str, str]] = customer.received  # type: ignore[attr-defined]
    acct = account(box)
    # Given a message sent by tools/sendSMS (carrier null) and one by sendMT
    [by_sms] = send(acct, "+13056708084")
    [by_mt] = send(acct, "+13056708085", {"method": "sendMT"})
    # Then both are accepted; sendSMS names its id, sendMT (a bare envelope) none
    assert (by_sms.outcome, by_sms.code) == (Outcome.ACCEPTED, "SENT_TO_CARRIER")
    assert by_sms.vendor_id in box.sim.store.messages
    assert (by_mt.outcome, by_mt.vendor_id) == (Outcome.ACCEPTED, None)
    # When the clock moves, Then the pushed reports read as the message's progress
    box.clock.advance(5)
    box.pushes.run_due()
    reports = [r for form in received for r in ogangi.parse_push(form) if r.vendor_id == by_sms.vendor_id]
    assert reports == [
        StatusReport(by_sms.vendor_id, DeliveryState.SENT, "DELIVERED_TO_CARRIER", "+13056708084"),
        StatusReport(by_sms.vendor_id, DeliveryState.DELIVERED, "DELIVERED_TO_DEVICE", "+13056708084"),
    ]
    # And the replies come pushed and polled
    box.clock.advance(1)
    box.pushes.run_due()
    pushed = [r for form in received if form["TYPE"] == "MO_MESSAGE" for r in ogangi.parse_push(form)]
    assert {(r.phone, r.to) for r in pushed} == {("+13056708084", LONG), ("+13056708085", LONG)}
    polled = ogangi.parse_replies(httpx.Client().send(ogangi.build_replies(acct, 0, 10, {"order": "asc"})))
    assert [(r.phone, r.text, r.to) for r in polled] == [(r.phone, r.text, r.to) for r in pushed]
    assert all(isinstance(r, Inbound) and r.keyword == "^OGANGI.*" for r in polled)
    # And a PIN comes back as the one texted
    pin = ogangi.parse_pin(httpx.Client().send(ogangi.build_pin(acct, "+13056708086", PIN_TEXT, 4)))
    assert re.fullmatch(r"\d{4}", pin)
    assert any(m.text == f"Tu código es {pin}" for m in box.sim.store.messages.values())
    # And a fired MO is echoed
    fired = ogangi.parse_fire(httpx.Client().send(ogangi.build_fire(acct, "+584121234567", "Sí")))
    assert fired == Inbound("+584121234567", "Sí")


def test_round_trip_refusals(make: Callable[..., Sandbox]) -> None:
    box = make(credit=1)
    [wrong_key] = send(account(box, private_key="not-the-key"), "+13056708084")
    assert (wrong_key.outcome, wrong_key.code) == (Outcome.PAUSE_ACCOUNT, "BAD_SIGNATURE")
    assert send(account(box), "+13056708084")[0].outcome is Outcome.ACCEPTED
    [broke] = send(account(box), "+13056708084")
    assert (broke.outcome, broke.code) == (Outcome.PAUSE_ACCOUNT, "NOT_ENOUGH_FUNDS")
    [bad_from] = send(account(box), "+13056708084", {"from": "4242"})
    assert (bad_from.outcome, bad_from.code) == (Outcome.REJECTED, "BAD_FROM")
