"""Api Smsclouds V1 as its manual (seeds/000) describes it: Bearer tokens, JSON bodies, HTTP codes.

Where the manual is silent this simulator chooses, and says so where it does:

- no credit for the whole request: 422 "Insufficient credit", nothing sent (all or nothing);
- a ``large_message`` past 160 characters costs 2 credits a number ("306 characters (2 messages)");
  email and voice campaigns cost nothing here;
- statuses: queued is 0 for the first half of the wait and 1 (process) after; sent and delivered
  are both 2 (the vendor has no handset receipt); failed is 3;
- ``combination`` fills markers one after another, B to F, each everywhere it occurs (a value that
  holds a later marker gets that one filled too); a marker whose value is missing stays as written;
- the 1-160 (70, 306) limit is on ``message`` as written; a number's filled text past that limit is
  taken but counted as a violation, and one past 160 costs 2 credits;
- texts with characters beyond ASCII sent without ``encode``, and ``allow_responses`` other than
  true ("always true"), are taken but counted as violations;
- a cellphone must be national digits of a possible number of the route's country, else 422;
- a wrong method or unknown path is 404, the only routing code the manual lists; HEAD is not served;
  maintenance answers 500 ("we had a problem with our server") to every authenticated request.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dispatcher.sandbox.core import SimRequest, SimResponse
from dispatcher.sandbox.messages import Push, SimMessage
from dispatcher.sandbox.samples import SampleJob, SandboxCustomer
from dispatcher.sandbox.skeleton import Customer, Simulator, bearer_token, json_reply
from dispatcher.sandbox.smsclouds_fields import (
    DATE,
    PLAIN_MAX,
    ROUTES,
    Refusal,
    check_schedule,
    flag,
    ids_of,
    message_fields,
    message_limit,
    optional_int,
    personalise,
    read_field_date,
    recipients_of,
    required_text,
)


@dataclass
class SmscloudsSettings:
    """A customer's own fields: its profile, the routes it may send by, the services it has."""

    name: str = "John"
    surname: str = "Dow"
    routes: frozenset[int] = frozenset(ROUTES)
    email_service: bool = True
    voice_service: bool = True


#: a customer: key is the ``user`` (an email), secret its Personal Access Token; replies are
#: pushed to its callback URL
SmscloudsAccount = Customer[SmscloudsSettings]


@dataclass
class SentRecord:
    """What the vendor keeps of an accepted message beyond the shared store."""

    campaign: int
    cellphone: str  #: national digits, as the vendor answers them
    message: SimMessage


class SmscloudsSim(Simulator[SmscloudsSettings]):
    """Api Smsclouds V1: user, message, status, response, email and voice, per account token."""

    key = "smsclouds"
    handset_receipts = False  #: its best news is "sent"
    settings_type = SmscloudsSettings
    default_credit = 500
    timezone = "America/Mexico_City"  #: the vendor's dates are Mexico City wall time
    sandbox = SandboxCustomer(
        "mx-smsclouds", "demo@example.com", "sandbox-smsclouds-token", "SANDBOX_SMSCLOUDS_TOKEN",
        {"token": "${SANDBOX_SMSCLOUDS_TOKEN}"},
        SampleJob("+52449", "{shop}: su cita es manana a las 9", 300), credit=1_000_000,
    )  # fmt: skip

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.sent: dict[str, SentRecord] = {}
        self.campaigns: list[tuple[str, dict[str, Any]]] = []  #: email and voice campaigns taken
        self._ids = itertools.count(40)
        self._campaign_ids = itertools.count(14)

    def handle(self, request: SimRequest) -> SimResponse:
        """Route, authenticate, then answer as the manual does, errors as error JSON."""
        try:
            return json_reply(self._route(request))
        except Refusal as refusal:
            error = {"error": {"information": refusal.information, "status_code": refusal.status}}
            return json_reply(error, refusal.status)

    def _route(self, request: SimRequest) -> dict[str, Any]:
        endpoint = ENDPOINTS.get((request.method, request.path.rstrip("/")))
        if endpoint is None:
            raise Refusal(404, "The specified route could not be found")
        account = self._authenticate(request)
        if self.faults.maintenance:
            raise Refusal(500, "We had a problem with our server. Try again later.")
        if request.method == "GET":
            return endpoint(self, account, {})
        body = request.json()
        if not isinstance(body, dict):
            raise Refusal(400, "Bad Request: the body must be a JSON object")
        return endpoint(self, account, body)

    def _authenticate(self, request: SimRequest) -> SmscloudsAccount:
        token = bearer_token(request)
        account = None if token is None else self.authenticate(None, token)
        if account is None:
            raise Refusal(401, "Unauthenticated.")
        return account

    def _user(self, account: SmscloudsAccount, body: dict[str, Any]) -> dict[str, Any]:
        user = {"user": account.key, "name": account.settings.name, "surname": account.settings.surname}
        return {"data": {"information": "User Found", **user, "credit": account.credit}}

    def _message(self, account: SmscloudsAccount, body: dict[str, Any]) -> dict[str, Any]:
        text, numbers = message_fields(body, account.settings.routes)
        texts = personalise(text, body.get("combination"), len(numbers))
        if "allow_responses" not in body:
            raise Refusal(422, "The allow responses field is required.")
        two_way = body["allow_responses"] is True
        if not two_way:
            self.ledger.violation(f"smsclouds {account.key}: allow_responses is not true")
        if not flag(body, "encode") and not all(t.isascii() for t in texts):
            self.ledger.violation(f"smsclouds {account.key}: accents sent without encode")
        limit = message_limit(body)
        if any(len(t) > limit for t in texts):
            self.ledger.violation(f"smsclouds {account.key}: a personalised text is over {limit} characters")
        # large_message is "2 messages": every number past 160 characters costs two credits.
        cost = sum(2 if max(len(text), len(t)) > PLAIN_MAX else 1 for t in texts)
        with self.lock:
            if account.credit < cost:
                raise Refusal(422, f"Insufficient credit: {cost} needed, {account.credit} left")
            account.credit -= cost
            campaign = next(self._campaign_ids)
            ids = [next(self._ids) for _ in numbers]
        now = self.now()
        for vendor_id, (national, e164), final in zip(ids, numbers, texts, strict=True):
            message = self.store.accept(str(vendor_id), e164, final, now, two_way, account.key)
            self._keep(account, SentRecord(campaign, national, message))
        stamp = self.wall(now).strftime(DATE)
        added = {"added": len(ids), "date_start_add": stamp, "date_finish_add": stamp}
        info = {"information": "Messages Added Correctly", **added, "campaign_id": campaign}
        return {"data": {**info, "messages_ids": ids}}

    def _keep(self, account: SmscloudsAccount, record: SentRecord) -> None:
        message = record.message
        with self.lock:
            self.sent[message.vendor_id] = record
        self.ledger.sent(message.phone)
        if message.reply and account.callback_url and self.pushes is not None:
            # Drawn now, sent when the reply arrives by the sandbox clock.
            at = message.accepted_at + timedelta(seconds=self.store.progress.reply_after)
            params = {
                "response": message.reply,
                "cellphone": record.cellphone,
                "date": self.wall(at).strftime(DATE),
            }
            push = Push(at, "GET", account.callback_url, {**params, "message_id": message.vendor_id})
            self.pushes.schedule(push)

    def _status(self, account: SmscloudsAccount, body: dict[str, Any]) -> dict[str, Any]:
        # The parameter table writes message_ids / campaign_ids, the prose messages_ids / campaigns_ids.
        ids = ids_of(body, "message_ids", "messages_ids")
        campaigns = ids_of(body, "campaign_ids", "campaigns_ids")
        if not ids and not campaigns:
            raise Refusal(422, "The message ids or the campaign ids are required.")
        now = self.now()
        items = [
            {**_item(vendor_id, record), "status": self._status_code(record.message, now)}
            for vendor_id, record in self._records(account)
            if int(vendor_id) in ids or record.campaign in campaigns
        ]
        return {"data": {"information": "Messages Found", "messages": items}}

    def _status_code(self, message: SimMessage, now: datetime) -> int:
        state = self.store.state(message, now)
        if state == "queued":
            age = (now - message.accepted_at).total_seconds()
            return 0 if age < self.store.progress.to_sent / 2 else 1
        return 3 if state == "failed" else 2

    def _responses(self, account: SmscloudsAccount, body: dict[str, Any]) -> dict[str, Any]:
        wanted = _reply_filter(body, self.wall(self.now()))
        replied = {m.vendor_id for m in self.store.replies(self.now(), account.key)}
        after = timedelta(seconds=self.store.progress.reply_after)
        items = []
        for vendor_id, record in self._records(account):
            received = self.wall(record.message.accepted_at + after)
            if vendor_id in replied and wanted(vendor_id, record, received):
                reply = {"response": record.message.reply, "received_at": received.strftime(DATE)}
                items.append({**_item(vendor_id, record), **reply})
        return {"data": {"information": "Responses Found", "count": len(items), "responses": items}}

    def _email(self, account: SmscloudsAccount, body: dict[str, Any]) -> dict[str, Any]:
        if not account.settings.email_service:
            raise Refusal(422, "The email service is not active on this account.")
        for name in ("body", "subject"):
            required_text(body, name)
        people = recipients_of(body, "email")
        if not all("@" in p["email"] for p in people):
            raise Refusal(422, "The recipients.*.email must be a valid email address.")
        optional_int(body, "attachment")
        check_schedule(body)
        self.campaigns.append(("email", body))
        return {"message": "Email campaign created correctly."}

    def _voice(self, account: SmscloudsAccount, body: dict[str, Any]) -> dict[str, Any]:
        if not account.settings.voice_service:
            raise Refusal(422, "The blaster service is not active on this account.")
        kind = body.get("type")
        if kind not in (1, 2, "1", "2"):
            raise Refusal(422, "The selected type is invalid.")
        if int(kind) == 1 and optional_int(body, "audio") is None:
            raise Refusal(422, "The audio field is required when type is 1.")
        if int(kind) == 2:
            required_text(body, "text")
        required_text(body, "campaign_name")
        if not all(str(p["cellphone"]).isdigit() for p in recipients_of(body, "cellphone")):
            raise Refusal(422, "The recipients.*.cellphone must be digits.")
        if body.get("transfer_num") is not None and body.get("transfer_key") is None:
            raise Refusal(422, "The transfer key field is required when transfer num is present.")
        if body.get("transfer_key") is not None and str(body["transfer_key"]) not in "0123456789":
            raise Refusal(422, "The transfer key must be an integer.")
        check_schedule(body)
        self.campaigns.append(("voice", body))
        return {"message": "Voice campaign created correctly."}

    def _records(self, account: SmscloudsAccount) -> list[tuple[str, SentRecord]]:
        with self.lock:
            return [(i, r) for i, r in self.sent.items() if r.message.account == account.key]


Endpoint = Callable[[SmscloudsSim, SmscloudsAccount, dict[str, Any]], dict[str, Any]]
ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    ("GET", "/api/v1/user"): SmscloudsSim._user,
    ("POST", "/api/v1/message"): SmscloudsSim._message,
    ("POST", "/api/v1/status"): SmscloudsSim._status,
    ("POST", "/api/v1/response"): SmscloudsSim._responses,
    ("POST", "/api/v1/responses"): SmscloudsSim._responses,  # the manual's prose spells it so
    ("POST", "/api/v1/email"): SmscloudsSim._email,
    ("POST", "/api/v1/voice"): SmscloudsSim._voice,
}


def _reply_filter(body: dict[str, Any], now: datetime) -> Callable[[str, SentRecord, datetime], bool]:
    kind = str(body.get("type"))
    if kind == "1":
        start, end = read_field_date(body.get("from"), "from"), read_field_date(body.get("to"), "to", now)
        return lambda _i, _r, received: start <= received <= end
    if kind == "2":
        ids = ids_of(body, "message_id", "messages_ids", "message_ids")
        if not ids:
            raise Refusal(422, "The message id field is required when type is 2.")
        return lambda vendor_id, _r, _d: int(vendor_id) in ids
    if kind == "3":
        phone = str(body.get("cellphone", ""))
        if not phone.isdigit():
            raise Refusal(422, "The cellphone field is required when type is 3.")
        return lambda _i, record, _d: record.cellphone == phone
    if kind == "4":
        campaign = optional_int(body, "campaign_id")
        if campaign is None:
            raise Refusal(422, "The campaign id field is required when type is 4.")
        return lambda _i, record, _d: record.campaign == campaign
    raise Refusal(422, "The selected type is invalid.")


def _item(vendor_id: str, record: SentRecord) -> dict[str, Any]:
    """The fields status and response items share."""
    return {
        "campaign_id": record.campaign,
        "message_id": int(vendor_id),
        "cellphone": record.cellphone,
        "message": record.message.text,
    }


#: the simulator the sandbox world starts for this vendor
SIMULATOR = SmscloudsSim
