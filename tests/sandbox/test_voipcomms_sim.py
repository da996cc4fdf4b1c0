"""The voipcomms sandbox over loopback HTTP: the manual's (seeds/003) examples get the manual's answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from dispatcher.errors import VendorAccountError
from dispatcher.sandbox.core import Faults
from dispatcher.sandbox.messages import Progress
from dispatcher.sandbox.voipcomms import VoipcommsSim
from dispatcher.sandbox.voipcomms_wire import PAGE_SIZE
from dispatcher.vendors import voipcomms
from dispatcher.vendors.base import Account, DeliveryState, Inbound, Outcome, Outgoing, Recipient
from tests.manuals.voipcomms import DELIVERY_DATE, SEND_LOG, TEXT, TO
from tests.sandbox.harness import Box, Boxes

MANUAL = json.loads(SEND_LOG)
KEY, PASSWORD = "AK4821f0c9", "pw-7Hq2-zX9v-Lm3k"
AUTH = (KEY, PASSWORD)
OURS = "17135550100"  #: the account's SMS-enabled number
API = "/api-v2/index.php/sms/"
SEND, SUMMARY, CHAT = API + "send", API + "summary", API + "chat"
BEFORE_MANUAL_DATE = datetime(2019, 9, 30, 17, 0, tzinfo=UTC)  # 12:00 in Houston, the day before


@dataclass
class Sandbox(Box):
    """The voipcomms simulator running, with the manual's requests."""

    def send(self, auth: Any = AUTH, **form: str) -> httpx.Response:
        return self.http.post(SEND, data=form, auth=auth)

    def rows(self, path: str, **form: str) -> list[dict[str, Any]]:
        response = self.http.post(path, data={"page": "0", **form}, auth=AUTH)
        return response.json()["summary" if path == SUMMARY else "chat"]


@pytest.fixture
def make(boxes: Boxes) -> Callable[..., Sandbox]:
    """The simulator on loopback with one customer (balance $1.00) the day before the manual's date."""

    def start(customer_url: str = "", progress: Progress | None = None, faults: Faults | None = None) -> Sandbox:
        progress = progress or Progress(delivered_rate=1.0, reply_rate=0.0)
        box = boxes.start(VoipcommsSim, BEFORE_MANUAL_DATE, progress, faults, box=Sandbox)
        box.sim.add_customer(KEY, PASSWORD, credit="1.00")
        box.sim.add_number(KEY, OURS, callback_url=customer_url)
        box.sim.add_number(KEY, "17135550199", sms_enabled=False)
        return box

    return start


@pytest.fixture
def box(make: Callable[..., Sandbox]) -> Sandbox:
    return make()


def test_manual_curl_example_scheduled_gets_the_manuals_send_log(box: Sandbox) -> None:
    # Given the manual's example: bulk (no from), delivered on 2019-10-01 00:00
    # When it is sent the day before
    response = box.send(to=TO, msg=TEXT, delivery_date=DELIVERY_DATE)
    # Then the answer is the manual's, field for field, under a fresh smsid
    assert response.status_code == 200
    entry = response.json()["send_log"][0]
    assert re.fullmatch(r"2019[0-9a-f]{23}", entry["smsid"])
    assert list(entry) == list(MANUAL["send_log"][0])
    assert entry == {**MANUAL["send_log"][0], "smsid": entry["smsid"]}
    # And it is not charged until it goes out
    assert box.sim.customers[KEY].credit == 1
    assert box.ledger.sends == {"+12812345678": 1}


def test_manual_php_example_with_our_number_is_two_way(box: Sandbox) -> None:
    response = box.send(**{"from": OURS, "to": TO, "msg": TEXT, "delivery_date": DELIVERY_DATE})
    entry = response.json()["send_log"][0]
    assert (entry["from"], entry["type"], entry["status"]) == (OURS, "2WAYSMS", "SCHEDULED")
    assert entry["sale"] == 0.02  # the 2-way rate: bulk is "lower rate"


def test_immediate_send_is_charged_now(box: Sandbox) -> None:
    entry = box.send(to=TO, msg=TEXT).json()["send_log"][0]
    assert (entry["status"], entry["delivery_date"], entry["sale"]) == ("QUEUED", "2019-09-30 12:00:00", 0.01)
    assert box.sim.customers[KEY].credit == Decimal("0.99")


def test_a_comma_list_logs_each_number_and_a_bad_one_gets_its_own_code(box: Sandbox) -> None:
    log = box.send(to="12812345678,5215512345678,12ab,447700900123", msg=TEXT).json()["send_log"]
    assert [(e["to"], e["code"], e["country"]) for e in log] == [
        ("12812345678", 200, "US"),
        ("5215512345678", 200, "MX"),
        ("12ab", 400, ""),
        ("447700900123", 200, "GB"),
    ]
    assert log[2]["code_desc"] == "Invalid number" and log[2]["smsid"] == ""
    assert len(box.ledger.sends) == 3 and box.sim.customers[KEY].credit == Decimal("0.97")


@pytest.mark.parametrize(("length", "parts"), [(160, 1), (161, 2), (306, 2), (307, 3)])
def test_long_texts_are_charged_per_153_character_part(box: Sandbox, length: int, parts: int) -> None:
    entry = box.send(to=TO, msg="x" * length).json()["send_log"][0]
    assert entry["sale"] == pytest.approx(0.01 * parts)
    assert box.sim.customers[KEY].credit == Decimal(100 - parts) / 100


@pytest.mark.parametrize(
    ("auth", "form", "status", "message"),
    [
        ((KEY, "wrong"), {"to": TO, "msg": TEXT}, 401, "Invalid api credentials"),
        (("nobody", PASSWORD), {"to": TO, "msg": TEXT}, 401, "Invalid api credentials"),
        (None, {"to": TO, "msg": TEXT}, 401, "Invalid api credentials"),
        (AUTH, {"msg": TEXT}, 200, "The to parameter is required"),
        (AUTH, {"to": TO, "msg": ""}, 200, "The msg parameter is required"),
        (AUTH, {"to": TO, "msg": TEXT, "from": "17134567890"}, 200, "does not belong to you"),
        (AUTH, {"to": TO, "msg": TEXT, "from": "17135550199"}, 200, "not SMS enabled"),
        (AUTH, {"to": TO, "msg": TEXT, "delivery_date": "tomorrow"}, 200, "Invalid delivery_date"),
        (AUTH, {"to": ",".join([TO] * 101), "msg": TEXT}, 200, "Not enough balance"),
    ],
    ids=["bad password", "unknown key", "no auth", "no to", "empty msg", "foreign from", "from not SMS",
         "bad date", "balance"],
)  # fmt: skip
def test_refusals_answer_json_error(box: Sandbox, auth: Any, form: dict, status: int, message: str) -> None:
    response = box.send(auth=auth, **form)
    assert response.status_code == status
    body = response.json()
    assert body["error"] is True and message in body["error_message"]
    assert not box.ledger.sends and box.sim.customers[KEY].credit == 1


def test_wrong_method_and_unknown_path(box: Sandbox) -> None:
    assert box.http.get(SEND, auth=AUTH).status_code == 405
    assert box.http.post("/api-v2/index.php/sms/nothing", auth=AUTH).json()["error"] is True


def test_balance_runs_out_request_by_request(box: Sandbox) -> None:
    for _ in range(100):
        assert box.send(to=TO, msg=TEXT).json()["send_log"][0]["code"] == 200
    assert box.send(to=TO, msg=TEXT).json() == {"error": True, "error_message": "Not enough balance"}
    assert box.ledger.sends["+12812345678"] == 100


def test_a_scheduled_message_without_balance_when_due_fails(box: Sandbox) -> None:
    # Given a message scheduled for tomorrow, and the balance spent meanwhile
    smsid = box.send(to=TO, msg=TEXT, delivery_date=DELIVERY_DATE).json()["send_log"][0]["smsid"]
    for _ in range(100):
        box.send(to="12812345679", msg=TEXT)
    # When its time comes
    box.clock.advance(13 * 3600)
    rows = {row["smsid"]: row for row in box.rows(CHAT, external=TO)}
    # Then it fails without being charged
    assert rows[smsid]["sms_status"] == "FAILED"
    assert box.sim.customers[KEY].credit == 0


def test_statuses_progress_by_the_clock(box: Sandbox) -> None:
    smsid = box.send(to=TO, msg=TEXT, delivery_date=DELIVERY_DATE).json()["send_log"][0]["smsid"]

    def status() -> tuple[str, str]:
        row = next(r for r in box.rows(SUMMARY) if r["smsid"] == smsid)
        return row["sms_status"], row["sms_status_date"]

    assert status() == ("SCHEDULED", "2019-10-01 00:00:00")
    box.clock.advance(12 * 3600)  # 00:00 in Houston: it goes out and is charged
    assert status() == ("QUEUED", "2019-10-01 00:00:00")
    assert box.sim.customers[KEY].credit == Decimal("0.99")
    box.clock.advance(2)
    assert status() == ("SENT", "2019-10-01 00:00:02")
    box.clock.advance(3)
    assert status() == ("DELIVERED", "2019-10-01 00:00:05")


def test_summary_pages_until_empty_newest_first(box: Sandbox) -> None:
    for n in range(PAGE_SIZE + 5):
        box.send(to=f"128123456{n:02d}", msg=TEXT)
    pages = [box.rows(SUMMARY, page=str(page)) for page in range(3)]
    assert [len(page) for page in pages] == [PAGE_SIZE, 5, 0]
    assert pages[0][0]["sms_external"] == "12812345624" and pages[1][-1]["sms_external"] == "12812345600"
    row = pages[0][0]
    assert set(row) == {
        "sms_id", "smsid", "sms_country", "sms_status", "sms_internal", "sms_external", "sms_status_date",
        "sms_msg", "sms_inout", "sms_sale",
    }  # fmt: skip
    assert (row["sms_inout"], row["sms_internal"], row["sms_sale"]) == ("OUT", "17134567890", "0.01")


def test_replies_to_two_way_messages_stop_words_and_the_callback(
    make: Callable[..., Sandbox], customer: ThreadingHTTPServer
) -> None:
    # Given every delivered 2-way message draws a stop word, replies going to our number's callback
    url = f"http://127.0.0.1:{customer.server_address[1]}/voip/in"
    box = make(url, Progress(delivered_rate=1.0, reply_rate=1.0, stop_rate=1.0))
    # When we send one 2-way and one bulk message and the reply time passes
    box.send(**{"from": OURS, "to": TO, "msg": TEXT})
    box.send(to="12812345679", msg=TEXT)
    assert box.pushes.run_due() == 0
    box.clock.advance(6)
    # Then only the 2-way one is answered, in the chat and at the callback URL
    chat = box.rows(CHAT, internal=OURS, external=TO)
    assert [(r["sms_inout"], r["sms_msg"]) for r in chat] == [("IN", "STOP"), ("OUT", TEXT)]
    assert box.rows(CHAT, external="12812345679") == [box.rows(SUMMARY)[0]]
    assert box.pushes.run_due() == 1
    assert customer.received == [  # type: ignore[attr-defined]
        {"from": TO, "to": OURS, "msg": "STOP", "date": "2019-09-30 12:00:06"}
    ]
    # And sending to that number again is counted as a violation
    box.send(**{"from": OURS, "to": TO, "msg": TEXT})
    assert box.ledger.violations == [f"voipcomms {KEY}: sent to +{TO} after it answered STOP"]


def test_faults_from_the_base_class(make: Callable[..., Sandbox]) -> None:
    for faults, check in [
        (Faults(error_rate=1.0), lambda r: r.status_code == 500),
        (Faults(malformed_rate=1.0), lambda r: r.text.startswith("<html>")),
        (Faults(maintenance=True), lambda r: r.status_code == 503 and r.json()["error"] is True),
    ]:
        box = make(faults=faults)
        assert check(box.send(to=TO, msg=TEXT))
        assert not box.ledger.sends


def test_a_scripted_answer_comes_first(box: Sandbox) -> None:
    box.sim.script({"status": 502, "body": "Bad Gateway"})
    assert box.send(to=TO, msg=TEXT).status_code == 502
    assert box.send(to=TO, msg=TEXT).status_code == 200


def account(box: Sandbox) -> Account:
    return Account(
        key="us-main",
        vendor="voipcomms",
        base_url=box.server.url("voipcomms"),
        country="US",
        params={"api_key": KEY, "api_password": PASSWORD},
        secret_fields=frozenset({"api_password"}),
    )


def test_round_trip_through_the_adapter(make: Callable[..., Sandbox]) -> None:
    box = make("", Progress(delivered_rate=1.0, reply_rate=1.0, stop_rate=1.0))
    acct = account(box)
    # Given a 2-way batch sent by the adapter, scheduled for tomorrow
    batch = Outgoing(
        [Recipient(1, "+12812345678", TEXT), Recipient(2, "+12812345679", TEXT)],
        voipcomms.validate_options({"from": "+" + OURS, "delivery_date": DELIVERY_DATE}),
    )
    results = []
    for sent in voipcomms.build_send(acct, batch):
        results += voipcomms.parse_send(acct, sent, httpx.Client().send(sent.request))
    # Then both are accepted under the simulator's ids
    assert [(r.outcome, r.code) for r in results] == [(Outcome.ACCEPTED, "200")] * 2
    assert {r.vendor_id for r in results} == set(box.sim.sms)
    # And the status poll reads them as queued (SCHEDULED)
    reports = voipcomms.parse_status(httpx.Client().send(voipcomms.build_status(acct, 0)))
    assert {(r.vendor_id, r.state, r.phone) for r in reports} == {
        (results[0].vendor_id, DeliveryState.QUEUED, "+12812345678"),
        (results[1].vendor_id, DeliveryState.QUEUED, "+12812345679"),
    }
    assert voipcomms.parse_status(httpx.Client().send(voipcomms.build_status(acct, 1))) == []
    # When the messages go out and are answered
    box.clock.advance(12 * 3600 + 6)
    request = voipcomms.build_replies(acct, 0, "+" + OURS, "+12812345678")
    replies = voipcomms.parse_replies(httpx.Client().send(request), external="+12812345678")
    # Then the reply reads as the handset's STOP to our number
    assert replies == [
        Inbound("+12812345678", "STOP", vendor_id=replies[0].vendor_id, to=OURS, at="2019-10-01 00:00:06")
    ]
    # And bad credentials pause the account
    bad = Account("x", "voipcomms", acct.base_url, "US", {"api_key": KEY, "api_password": "nope"})
    sent = voipcomms.build_send(bad, batch)[0]
    with pytest.raises(VendorAccountError):
        voipcomms.parse_send(bad, sent, httpx.Client().send(sent.request))


def test_round_trip_reads_delivered(box: Sandbox) -> None:
    batch = Outgoing([Recipient(1, "+12812345678", TEXT)])
    sent = voipcomms.build_send(account(box), batch)[0]
    vendor_id = voipcomms.parse_send(account(box), sent, httpx.Client().send(sent.request))[0].vendor_id
    box.clock.advance(5)
    reports = voipcomms.parse_status(httpx.Client().send(voipcomms.build_status(account(box), 0)))
    assert [(r.vendor_id, r.state) for r in reports] == [(vendor_id, DeliveryState.DELIVERED)]
