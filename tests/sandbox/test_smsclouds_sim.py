"""The smsclouds sandbox over loopback HTTP: the manual's (seeds/000) examples get the manual's answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from dispatcher.errors import VendorAccountError
from dispatcher.sandbox.core import Faults
from dispatcher.sandbox.messages import REPLY_WORDS, STOP_WORDS, Progress
from dispatcher.sandbox.smsclouds import SmscloudsSim
from dispatcher.text import render
from dispatcher.vendors import smsclouds
from dispatcher.vendors.base import Account, DeliveryState, Outcome, Outgoing, Recipient, Result
from tests.manuals.smsclouds import (
    BASH_SEND,
    EMAIL,
    JAVA_SEND,
    JS_SEND,
    JSON_SEND,
    RESPONSE_EXAMPLE,
    STATUS_EXAMPLE,
    USER,
    VOICE,
    reply,
)
from tests.sandbox.harness import Box as Running
from tests.sandbox.harness import Boxes

TOKEN = "tok-sandbox-7c1d9e"
NOON = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # 12:00 in Mexico City
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
MANUAL_KEYS = {"information", "added", "date_start_add", "date_finish_add", "campaign_id", "messages_ids"}
ITEM_KEYS = {"campaign_id", "message_id", "cellphone", "message"}


@dataclass
class Box(Running):
    """The smsclouds simulator running, with the project's account pointing at it."""

    def account(self, token: str = TOKEN) -> Account:
        return Account(
            key="mx-clouds",
            vendor="smsclouds",
            base_url=self.server.url("smsclouds"),
            country="MX",
            params={"token": token},
            secret_fields=frozenset({"token"}),
        )


@pytest.fixture
def make(boxes: Boxes) -> Callable[..., Box]:
    """Start sandboxes with a progress, faults and one customer's settings."""

    def start(progress: Progress | None = None, faults: Faults | None = None, **settings: Any) -> Box:
        box = boxes.start(SmscloudsSim, NOON, progress, faults, box=Box, headers=HEADERS)
        box.sim.add_customer(USER, TOKEN, **settings)
        return box

    return start


def error_of(response: httpx.Response, status: int) -> str:
    """Check the manual's error shape and status; return the information."""
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"information", "status_code"}
    assert body["error"]["status_code"] == status
    return body["error"]["information"]


def test_user_answers_the_manual_example(make: Callable[..., Box]) -> None:
    # Given the manual's customer with 500 credits
    box = make()
    # When it runs the manual's request
    response = box.http.get("/api/v1/user")
    # Then it gets the manual's answer, word for word
    assert response.status_code == 200
    assert response.json() == reply("user_reply.json")


def test_send_bash_example(make: Callable[..., Box]) -> None:
    box = make()
    response = box.http.post("/api/v1/message", json=BASH_SEND)
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == MANUAL_KEYS
    assert data["information"] == "Messages Added Correctly"
    assert (data["added"], data["campaign_id"], data["messages_ids"]) == (3, 14, [40, 41, 42])
    assert data["date_start_add"] == data["date_finish_add"] == "2026-11-23 12:00:00"
    # Each number got its own text through combination, and counts as one send
    assert (
        box.sim.store.get("41").text == "Hello Joe receive this promo code and get some free drinks 7SADAS6D786B"
    )
    assert dict(box.ledger.sends) == {"+521234567890": 1, "+521234567891": 1, "+521234567892": 1}
    assert box.sim.customers[USER].credit == 497


def test_send_json_and_javascript_examples(make: Callable[..., Box]) -> None:
    box = make()
    first = box.http.post("/api/v1/message", json=JSON_SEND).json()["data"]
    second = box.http.post("/api/v1/message", json=JS_SEND).json()["data"]
    assert (first["added"], first["messages_ids"]) == (2, [40, 41])
    assert (second["added"], second["messages_ids"], second["campaign_id"]) == (1, [42], 15)
    assert (
        box.sim.store.get("40").text == "Hello John receive this promo code 7SADAS6D786A and get some free drinks"
    )
    assert box.sim.store.get("42").text == "This is a text, hello"
    assert box.ledger.violations == []


def test_the_prose_spelling_cellphone_is_taken_too(make: Callable[..., Box]) -> None:
    box = make()
    body = {k: v for k, v in JS_SEND.items() if k != "cellphones"} | {"cellphone": ["4498987282"]}
    assert box.http.post("/api/v1/message", json=body).json()["data"]["messages_ids"] == [40]


def test_the_java_example_breaks_the_parameter_table(make: Callable[..., Box]) -> None:
    # Given the Java example, whose cellphones and combination are strings, not arrays
    box = make()
    response = box.http.post("/api/v1/message", json=JAVA_SEND)
    # Then the parameter table wins: 422, nothing charged
    assert "array" in error_of(response, 422)
    assert box.sim.customers[USER].credit == 500 and not box.ledger.sends


@pytest.mark.parametrize(
    ("length", "flags", "status"),
    [
        (160, {}, 200),
        (161, {}, 422),
        (161, {"large_message": True}, 200),
        (306, {"large_message": True}, 200),
        (307, {"large_message": True}, 422),
        (70, {"encode": True}, 200),
        (71, {"encode": True}, 422),
        (71, {"encode": True, "large_message": True}, 422),
    ],
)
def test_text_limits(make: Callable[..., Box], length: int, flags: dict, status: int) -> None:
    box = make()
    response = box.http.post(
        "/api/v1/message", json={**JS_SEND, "encode": False, "message": "x" * length, **flags}
    )
    assert response.status_code == status
    if status == 422:
        assert "greater than" in error_of(response, 422)


def test_a_large_message_costs_two_credits(make: Callable[..., Box]) -> None:
    box = make()
    body = {**JSON_SEND, "message": "y" * 200, "large_message": True}
    assert box.http.post("/api/v1/message", json=body).status_code == 200
    assert box.http.get("/api/v1/user").json()["data"]["credit"] == 496


@pytest.mark.parametrize(
    ("label", "change"),
    [
        ("empty message", {"message": ""}),
        ("no cellphones", {"cellphones": None}),
        ("empty cellphones", {"cellphones": []}),
        ("a cellphone that is no number", {"cellphones": ["12ab567890"]}),
        ("a cellphone too short for Mexico", {"cellphones": ["12345"]}),
        ("no country", {"country": None}),
        ("a country not in the table", {"country": 4}),
        ("combination shorter than cellphones", {"combination": [{"names": ["John"]}]}),
        ("combination not an array", {"combination": "John"}),
        ("allow_responses missing", {"allow_responses": None}),
        ("encode not a boolean", {"encode": "yes"}),
    ],
)
def test_wrong_parameters_are_422(make: Callable[..., Box], label: str, change: dict) -> None:
    box = make()
    body = {k: v for k, v in {**JSON_SEND, **change}.items() if v is not None}
    error_of(box.http.post("/api/v1/message", json=body), 422)
    assert box.sim.customers[USER].credit == 500 and not box.ledger.sends


def test_a_country_outside_the_account_routes_is_422(make: Callable[..., Box]) -> None:
    box = make(routes=frozenset({1}))
    body = {**JS_SEND, "cellphones": ["3001234567"], "country": 3}
    assert "routes" in error_of(box.http.post("/api/v1/message", json=body), 422)


def test_credit_runs_out(make: Callable[..., Box]) -> None:
    # Given an account with 2 credits
    box = make(credit=2)
    # When it sends to 3 numbers, nothing goes: 422 "Insufficient credit" (the manual is silent)
    assert "Insufficient credit" in error_of(box.http.post("/api/v1/message", json=BASH_SEND), 422)
    assert box.sim.customers[USER].credit == 2 and not box.sim.store.messages
    # Then 2 numbers use it up, and the next message is refused
    assert box.http.post("/api/v1/message", json=JSON_SEND).status_code == 200
    assert box.http.get("/api/v1/user").json()["data"]["credit"] == 0
    error_of(box.http.post("/api/v1/message", json=JS_SEND), 422)
    assert sum(box.ledger.sends.values()) == 2


ENDPOINTS = [
    ("GET", "/api/v1/user"),
    ("POST", "/api/v1/message"),
    ("POST", "/api/v1/status"),
    ("POST", "/api/v1/response"),
    ("POST", "/api/v1/email"),
    ("POST", "/api/v1/voice"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_a_wrong_token_is_401(make: Callable[..., Box], method: str, path: str, authorization: str | None) -> None:
    box = make()
    headers = {"Accept": "application/json"} | ({"Authorization": authorization} if authorization else {})
    response = httpx.request(method, box.http.base_url.join(path.lstrip("/")), headers=headers, json={})
    error_of(response, 401)


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v1/nothing"), ("GET", "/api/v1/message")])
def test_an_unknown_route_is_404(make: Callable[..., Box], method: str, path: str) -> None:
    box = make()
    error_of(box.http.request(method, path.lstrip("/")), 404)


def test_a_body_that_is_not_json_is_400(make: Callable[..., Box]) -> None:
    # Given the manual's bash status example, which sends form fields (curl -d) and no JSON
    box = make()
    response = box.http.post("/api/v1/status", data={"message_ids": "consequatur", "campaign_ids": "consequatur"})
    # Then: "Bad Request -- You probably forgot to add the json to your request"
    error_of(response, 400)


def test_status_examples_values_are_422(make: Callable[..., Box]) -> None:
    box = make()
    error_of(box.http.post("/api/v1/status", json=STATUS_EXAMPLE), 422)
    error_of(box.http.post("/api/v1/status", json={}), 422)


def status_of(box: Box, **query: list[int]) -> list[dict[str, Any]]:
    response = box.http.post("/api/v1/status", json=query)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["information"] == "Messages Found"
    return data["messages"]


@pytest.mark.parametrize(("delivered_rate", "final"), [(1.0, 2), (0.0, 3)])
def test_statuses_progress_with_the_clock(make: Callable[..., Box], delivered_rate: float, final: int) -> None:
    # Given the bash example sent, queued 2 s and sent 3 s more
    box = make(Progress(to_sent=2, to_final=5, delivered_rate=delivered_rate))
    box.http.post("/api/v1/message", json=BASH_SEND)
    # Then its status goes 0 queued, 1 process, 2 sent, then 2 (no handset receipt) or 3 fail
    seen = []
    for step in (0, 1.5, 1.0, 3.0):
        box.clock.advance(step)
        [item] = status_of(box, message_ids=[40])
        seen.append(item["status"])
    assert seen == [0, 1, 2, final]
    assert set(item) == ITEM_KEYS | {"status"}
    assert (item["campaign_id"], item["cellphone"]) == (14, "1234567890")
    assert item["message"] == "Hello John receive this promo code and get some free drinks 7SADAS6D786A"
    # And the campaign query lists the three; the manual's spelling campaigns_ids works too
    assert [i["message_id"] for i in status_of(box, campaign_ids=[14])] == [40, 41, 42]
    assert len(status_of(box, campaigns_ids=[14], messages_ids=[99])) == 3
    assert status_of(box, message_ids=[99]) == []


def test_another_account_sees_none_of_our_messages(make: Callable[..., Box]) -> None:
    box = make()
    box.sim.add_customer("other@example.com", "tok-other")
    box.http.post("/api/v1/message", json=JS_SEND)
    response = box.http.post(
        "/api/v1/status", json={"message_ids": [40]}, headers={"Authorization": "Bearer tok-other"}
    )
    assert response.json()["data"]["messages"] == []


def responses_of(box: Box, path: str = "/api/v1/response", **query: Any) -> list[dict[str, Any]]:
    response = box.http.post(path, json=query)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["information"] == "Responses Found" and data["count"] == len(data["responses"])
    return data["responses"]


def test_replies_arrive_by_the_clock_and_every_query_type_finds_them(make: Callable[..., Box]) -> None:
    # Given every message answered with a stop word 6 s after it was sent
    box = make(Progress(reply_rate=1.0, stop_rate=1.0, reply_after=6))
    box.http.post("/api/v1/message", json=BASH_SEND)
    assert responses_of(box, type=4, campaign_id=14) == []
    # When 6 s pass
    box.clock.advance(6)
    # Then each query type finds its replies, shaped like the manual's
    replies = responses_of(box, type=4, campaign_id=14)
    assert len(replies) == 3 and all(r["response"] in STOP_WORDS for r in replies)
    assert set(replies[0]) == ITEM_KEYS | {"response", "received_at"}
    assert replies[0]["received_at"] == "2026-11-23 12:00:06"
    assert [r["message_id"] for r in responses_of(box, type=2, message_id=[41])] == [41]
    assert [r["cellphone"] for r in responses_of(box, type=3, cellphone=1234567892)] == ["1234567892"]
    assert len(responses_of(box, type=1, **{"from": "2026-11-23", "to": "2026-11-23"})) == 3
    assert len(responses_of(box, type=1, **{"from": "2026-11-23 12:00:07"})) == 0
    assert len(responses_of(box, "/api/v1/responses", type=1, **{"from": "2026-11-23 12:00:00"})) == 3


def test_replies_that_are_not_stop_words(make: Callable[..., Box]) -> None:
    box = make(Progress(reply_rate=1.0, stop_rate=0.0, reply_after=6))
    box.http.post("/api/v1/message", json=JSON_SEND)
    box.clock.advance(6)
    assert all(r["response"] in REPLY_WORDS for r in responses_of(box, type=4, campaign_id=14))


@pytest.mark.parametrize(
    "query",
    [
        RESPONSE_EXAMPLE,  # the manual's example values: type 9, message_id "quia"
        {"type": 1},
        {"type": 1, "from": "25/03/1978"},
        {"type": 2},
        {"type": 2, "message_id": "quia"},
        {"type": 3},
        {"type": 4, "campaign_id": "x"},
    ],
)
def test_wrong_reply_queries_are_422(make: Callable[..., Box], query: dict) -> None:
    box = make()
    error_of(box.http.post("/api/v1/response", json=query), 422)


def test_one_way_messages_draw_no_reply_and_are_counted(make: Callable[..., Box]) -> None:
    # Given allow_responses false (the manual: "always true") and every two-way message answered
    box = make(Progress(reply_rate=1.0))
    assert box.http.post("/api/v1/message", json={**JS_SEND, "allow_responses": False}).status_code == 200
    box.clock.advance(60)
    # Then no reply comes, and the breach is counted
    assert responses_of(box, type=4, campaign_id=14) == []
    assert box.ledger.violations == [f"smsclouds {USER}: allow_responses is not true"]


def test_accents_without_encode_are_counted(make: Callable[..., Box]) -> None:
    box = make()
    box.http.post("/api/v1/message", json={**JSON_SEND, "combination": [{"names": ["José", "Iñaki"]}]})
    assert box.ledger.violations == [f"smsclouds {USER}: accents sent without encode"]


def test_replies_are_pushed_to_the_account_url(make: Callable[..., Box], customer: ThreadingHTTPServer) -> None:
    # Given an account with an MO URL and a message that will be answered with a stop word after 6 s
    url = f"http://127.0.0.1:{customer.server_address[1]}/mo"
    box = make(Progress(reply_rate=1.0, stop_rate=1.0, reply_after=6), callback_url=url)
    box.http.post("/api/v1/message", json=JS_SEND)
    assert box.pushes.run_due() == 0
    # When the reply arrives by the clock
    box.clock.advance(6)
    assert box.pushes.run_due() == 1
    # Then the customer got the manual's GET and answered ok
    [(path, params)] = [(p.path, dict(parse_qsl(p.query))) for p in map(urlsplit, customer.paths)]  # type: ignore[attr-defined]
    assert path == "/mo"
    assert params == {
        "response": params["response"],
        "cellphone": "4498987282",
        "message_id": "40",
        "date": "2026-11-23 12:00:06",
    }
    assert params["response"] in STOP_WORDS
    assert box.pushes.sent[0][1] == 200
    # And the adapter reads it as the reply to message 40
    [inbound] = smsclouds.parse_push(params)
    assert (inbound.phone, inbound.vendor_id, inbound.text) == ("4498987282", "40", params["response"])


def test_email_example(make: Callable[..., Box]) -> None:
    box = make()
    response = box.http.post("/api/v1/email", json=EMAIL)
    assert response.status_code == 200
    assert response.json() == {"message": "Email campaign created correctly."}
    assert box.sim.campaigns == [("email", EMAIL)]


@pytest.mark.parametrize(
    "body",
    [
        {"body": "test", "recipients": "eius"},  # the manual's Java example
        {**EMAIL, "subject": ""},
        {**EMAIL, "recipients": [{"name": "Jack"}]},
        {**EMAIL, "recipients": [{"email": "jack"}]},
        {**EMAIL, "attachment": "twenty"},
        {**EMAIL, "scheduledDate": "07/08/2018"},
    ],
)
def test_wrong_emails_are_422(make: Callable[..., Box], body: dict) -> None:
    error_of(make().http.post("/api/v1/email", json=body), 422)


def test_voice_example(make: Callable[..., Box]) -> None:
    box = make()
    response = box.http.post("/api/v1/voice", json=VOICE)
    assert response.status_code == 200
    assert response.json() == {"message": "Voice campaign created correctly."}
    tts = {
        "type": 2,
        "text": "Hola <+NAME+>",
        "campaign_name": "tts",
        "recipients": [{"cellphone": "4498987282"}],
    }
    assert box.http.post("/api/v1/voice", json=tts).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"type": 1, "campaign_name": "test api audio", "audio": 22, "recipients": "eius"},  # Java example
        {**VOICE, "type": 3},
        {**VOICE, "audio": None},
        {**VOICE, "type": 2},
        {**VOICE, "campaign_name": ""},
        {**VOICE, "transfer_key": None},
        {**VOICE, "transfer_key": "55"},
        {**VOICE, "recipients": [{"cellphone": "not a number"}]},
    ],
)
def test_wrong_voice_campaigns_are_422(make: Callable[..., Box], body: dict) -> None:
    error_of(make().http.post("/api/v1/voice", json=body), 422)


@pytest.mark.parametrize("path", ["/api/v1/email", "/api/v1/voice"])
def test_services_not_active_are_422(make: Callable[..., Box], path: str) -> None:
    box = make(email_service=False, voice_service=False)
    assert "not active" in error_of(box.http.post(path, json=EMAIL if "email" in path else VOICE), 422)


def test_faults(make: Callable[..., Box]) -> None:
    assert make(faults=Faults(error_rate=1.0)).http.get("/api/v1/user").status_code == 500
    malformed = make(faults=Faults(malformed_rate=1.0)).http.get("/api/v1/user")
    assert malformed.status_code == 200 and malformed.text.startswith("<html>")
    box = make(faults=Faults(maintenance=True))
    error_of(box.http.post("/api/v1/message", json=JS_SEND), 500)
    assert not box.ledger.sends
    # A scripted answer comes first
    box = make()
    box.sim.script({"status": 503, "body": "busy"})
    assert box.http.get("/api/v1/user").status_code == 503
    assert box.http.get("/api/v1/user").status_code == 200


@dataclass
class Adapter:
    """The project's smsclouds adapter driven over real HTTP against the sandbox."""

    box: Box
    account: Account

    def send(self, batch: Outgoing) -> list[Result]:
        """Refuse what check_recipient refuses, as the sender does, and send the rest."""
        refused = [
            Result(r.message_id, Outcome.REJECTED, reason=why)
            for r in batch.recipients
            if (why := smsclouds.check_recipient(r, batch.options))
        ]
        taken = {r.message_id for r in refused}
        sendable = Outgoing([r for r in batch.recipients if r.message_id not in taken], batch.options)
        with httpx.Client(timeout=5.0) as client:
            return refused + [
                result
                for sent in smsclouds.build_send(self.account, sendable)
                for result in smsclouds.parse_send(self.account, sent, client.send(sent.request))
            ]

    def run(self, request: httpx.Request) -> httpx.Response:
        with httpx.Client(timeout=5.0) as client:
            return client.send(request)


@pytest.mark.parametrize(("delivered_rate", "final"), [(1.0, DeliveryState.SENT), (0.0, DeliveryState.FAILED)])
def test_round_trip_with_the_adapter(
    make: Callable[..., Box], delivered_rate: float, final: DeliveryState
) -> None:
    # Given the sandbox and the project's adapter
    box = make(Progress(delivered_rate=delivered_rate, reply_rate=1.0, stop_rate=1.0))
    adapter = Adapter(box, box.account())
    batch = Outgoing(
        [
            Recipient(1, "+524498987282", "Hola <+B+>", {"name": "Ana"}),
            Recipient(2, "+524492799694", "Hola <+B+>", {"name": "Luis"}),
            Recipient(3, "+573001234567", "Hi"),
            Recipient(4, "+447700900123", "Hi"),
        ]
    )
    # When it sends: one request per route, the UK number never sent
    results = adapter.send(batch)
    by_id = {r.message_id: r for r in results}
    assert [by_id[i].outcome for i in (1, 2, 3, 4)] == [Outcome.ACCEPTED] * 3 + [Outcome.REJECTED]
    ids = [by_id[i].vendor_id for i in (1, 2, 3)]
    assert ids == ["40", "41", "42"]
    assert box.sim.store.get("41").text == "Hola Luis"
    assert set(box.ledger.sends) == {"+524498987282", "+524492799694", "+573001234567"}
    assert smsclouds.parse_balance(adapter.run(smsclouds.build_balance(adapter.account))).credit == 497
    # Then statuses follow the clock
    status = smsclouds.build_status(adapter.account, ids)
    assert {r.state for r in smsclouds.parse_status(adapter.run(status))} == {DeliveryState.QUEUED}
    box.clock.advance(10)
    reports = smsclouds.parse_status(adapter.run(status))
    assert [(r.vendor_id, r.state) for r in reports] == [(i, final) for i in ids]
    # And the replies are read back against our messages (a handset that got nothing answers nothing)
    inbound = smsclouds.parse_replies(adapter.run(smsclouds.build_replies(adapter.account, message_id=ids)))
    if final is DeliveryState.FAILED:
        assert inbound == []
        return
    assert [(i.vendor_id, i.phone) for i in inbound] == [
        ("40", "4498987282"),
        ("41", "4492799694"),
        ("42", "3001234567"),
    ]
    assert all(i.text in STOP_WORDS for i in inbound)
    since = smsclouds.build_replies(adapter.account, **{"from": datetime(2026, 11, 23)})
    assert len(smsclouds.parse_replies(adapter.run(since))) == 3


def test_round_trip_errors_and_campaigns(make: Callable[..., Box]) -> None:
    box = make(credit=1)
    adapter = Adapter(box, box.account())
    # No credit for two numbers: the whole request is refused (422), and the account pauses
    batch = Outgoing([Recipient(1, "+524498987282", "Hi"), Recipient(2, "+524492799694", "Hi")])
    with pytest.raises(VendorAccountError):
        adapter.send(batch)
    # A wrong token pauses the account
    with pytest.raises(VendorAccountError):
        smsclouds.parse_balance(adapter.run(smsclouds.build_balance(box.account("wrong"))))
    # Email and voice campaigns as the adapter builds them
    email = smsclouds.build_email(
        adapter.account, subject="pay order", body="Hi <+NAME+>", recipients=[{"email": "jack@example.com"}]
    )
    assert smsclouds.parse_email(adapter.run(email)) == "Email campaign created correctly."
    voice = smsclouds.build_voice(
        adapter.account,
        kind=1,
        campaign_name="test api audio",
        recipients=[{"cellphone": "+521234445697"}],
        audio=22,
        transfer_num="4499157710",
        transfer_key=5,
        scheduled_date=datetime(2018, 8, 14, 12, 50),
    )
    assert smsclouds.parse_voice(adapter.run(voice)) == "Voice campaign created correctly."


@pytest.mark.parametrize(
    ("options", "to"),
    [
        ({"channel": "email", "subject": "pay order", "attachment": 20}, "jack@example.com"),
        ({"channel": "voice", "campaign_name": "test api audio"}, "+524498987282"),
        (
            {
                "channel": "voice",
                "voice_type": 1,
                "audio": 22,
                "transfer_num": "4499157710",
                "transfer_key": 5,
            },
            "+524498987282",
        ),
    ],
)
def test_round_trip_of_email_and_voice_jobs(make: Callable[..., Box], options: dict, to: str) -> None:
    # Given a job on the email or voice channel
    box = make()
    adapter = Adapter(box, box.account())
    batch = Outgoing([Recipient(1, to, "Hi <+NAME+>", {"name": "Jack"})], options)
    # Then the sandbox takes the campaign and the adapter accepts the recipient
    [result] = adapter.send(batch)
    assert result.outcome == Outcome.ACCEPTED
    [(kind, body)] = box.sim.campaigns
    assert kind == options["channel"] and body["recipients"][0]["name"] == "Jack"
    assert not box.ledger.sends  # not an SMS


#: recipients' vars that are hard to carry: accents, emoji, the marker syntax's characters, marker
#: lookalikes, a real marker, empty, long, a newline, a placeholder as a value, GSM-7's extension
TRICKY: list[dict[str, str]] = [
    {"name": "Ana", "code": "1"},
    {"name": "José Ñúñez", "code": "2"},
    {"name": "😀", "code": "3"},
    {"name": "<3", "code": "4"},
    {"name": "1+1", "code": "<"},
    {"name": "a > b", "code": "+"},
    {"name": "<+Z+>", "code": "5"},
    {"name": "+>", "code": "6"},
    {"name": "<+B", "code": "+>"},
    {"name": "<+C+>", "code": "7", "field1": "x"},  # a real marker: refused, never filled by the vendor
    {"name": "", "code": "8"},
    {"name": "x" * 120, "code": "9"},
    {"name": "Ana\nLuis", "code": "10"},
    {"name": "{code}", "code": "11"},
    {"name": "[~]^", "code": "12"},
    {"name": "Luis", "code": "13"},
    {"name": "Iñaki", "code": "14"},
]


@pytest.mark.parametrize(
    ("template", "refused"),
    [
        ("Hola {name}, su codigo es {code}", {10}),
        ("{name}{code}", {9, 10}),  # "<+B" and "+>" meet as <+B+>
        ("<{name}+ {code}>", {10}),
        ("{code}: {name} / {name}", {10}),
        ("{name}", {10}),
        ("Precio <+IVA {name}", {10}),
    ],
)
def test_the_vendor_renders_for_each_number_the_text_we_store(
    make: Callable[..., Box], template: str, refused: set[int]
) -> None:
    # Given recipients of a templated job with tricky values, their texts rendered as ingest does
    # (which refuses a blank text), each value a marker brought refused before any request
    box = make(credit=10_000)
    adapter = Adapter(box, box.account())
    recipients = [
        Recipient(i + 1, f"+52449{i:07d}", text, v, template)
        for i, v in enumerate(TRICKY)
        if (text := render(template, v)).strip()
    ]
    # When the adapter sends them (combination where they fit, per text where not)
    results = {r.message_id: r for r in adapter.send(Outgoing(recipients))}
    # Then every number got from the vendor exactly the text we store; only a real marker is refused
    assert {i for i, r in results.items() if r.outcome is Outcome.REJECTED} == refused
    sent = [r for r in recipients if r.message_id not in refused]
    assert all(results[r.message_id].outcome is Outcome.ACCEPTED for r in sent)
    vendor_texts = [box.sim.store.get(str(results[r.message_id].vendor_id)).text for r in sent]
    assert vendor_texts == [r.text for r in sent]
    assert box.ledger.violations == []
    assert sorted(box.ledger.sends.values()) == [1] * len(sent)
    # And the vendor filled fields where the template fits them
    bodies = [r.json() for r in box.ledger.of("smsclouds", "/message")]
    assert any("combination" in b for b in bodies) == ("<+" not in template)


def test_a_combination_request_carries_the_batch_in_one_request(make: Callable[..., Box]) -> None:
    # Given 500 recipients (a batch), each with its own name and code
    box = make(credit=1_000)
    adapter = Adapter(box, box.account())
    template = "Hola {name}, su codigo es {code}"
    people = [{"name": f"Cliente {i}", "code": f"{i:06d}"} for i in range(500)]
    recipients = [
        Recipient(i + 1, f"+52449{i:07d}", render(template, v), v, template) for i, v in enumerate(people)
    ]
    # When they are sent
    results = adapter.send(Outgoing(recipients))
    # Then the vendor got one request and rendered 500 texts, ours
    assert len(box.ledger.of("smsclouds", "/message")) == 1
    assert [box.sim.store.get(str(r.vendor_id)).text for r in results] == [r.text for r in recipients]
    assert box.sim.customers[USER].credit == 500


def test_combination_fills_markers_one_after_another(make: Callable[..., Box]) -> None:
    # Given a name that holds a later marker (why the adapter keeps such values out of a combination)
    box = make()
    body = {**JSON_SEND, "combination": [{"names": ["<+C+>", "Joe"], "field1": ["7", "8"]}]}
    assert box.http.post("/api/v1/message", json=body).status_code == 200
    # Then the vendor filled it too
    assert box.sim.store.get("40").text == "Hello 7 receive this promo code 7 and get some free drinks"


def test_a_filled_text_over_the_limit_is_counted(make: Callable[..., Box]) -> None:
    box = make()
    body = {**JSON_SEND, "message": "<+B+>", "combination": [{"names": ["x" * 161, "y"]}]}
    assert box.http.post("/api/v1/message", json=body).status_code == 200
    assert box.ledger.violations == [f"smsclouds {USER}: a personalised text is over 160 characters"]
    assert box.sim.customers[USER].credit == 500 - 3
