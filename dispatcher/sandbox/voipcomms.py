"""VoIP Communications api-v2 as its manual (seeds/003) describes it: Basic auth, send_log, 2-way numbers.

The manual covers only ``sms/send``. Where it is silent this follows the vendor's public app (the
adapter's notes): refusals are ``{"error": true, "error_message": ...}`` with HTTP 200, and
``sms/summary`` / ``sms/chat`` are form POSTs paged by ``page`` = 0, 1, ... until a page is empty,
with rows named ``sms_id``, ``sms_msg``, ``sms_status``, ``sms_external``, ``sms_status_date``.

Sample reply (the manual's), one entry per number::

    {"send_log": [{"code": 200, "code_desc": "", "from": "17134567890", "to": "12812345678",
                   "country": "US", "msg": "It is a SMS message", "delivery_date": "2019-10-01 00:00:00",
                   "sale": 0.01, "type": "BULKSMS", "status": "SCHEDULED",
                   "smsid": "2017559ea27008c6b7122900621"}]}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from dispatcher.sandbox.core import SimRequest, SimResponse
from dispatcher.sandbox.messages import STOP_WORDS, Push, SimMessage
from dispatcher.sandbox.samples import SampleJob, SandboxCustomer
from dispatcher.sandbox.skeleton import Customer, Simulator, basic_credentials, wall_clock
from dispatcher.sandbox.voipcomms_wire import (
    BULK,
    TWO_WAY,
    bad_number,
    country_of,
    delivery_date,
    json_answer,
    paged,
    problem_of,
    refusal,
)

#: characters of a single SMS; longer texts go in parts of PART_CHARS (the manual's numbers)
SINGLE_CHARS, PART_CHARS = 160, 153
#: store state -> status word; only SCHEDULED is documented, the rest are this sandbox's choice
WORDS = {"queued": "QUEUED", "sent": "SENT", "delivered": "DELIVERED", "failed": "FAILED"}
DAY = "%Y-%m-%d %H:%M:%S"


@dataclass
class VoipNumber:
    """One of a customer's numbers: 2-way SMS goes out from it, replies go to its callback URL."""

    number: str
    sms_enabled: bool = True
    callback_url: str = ""  #: "" for the customer's own


@dataclass
class VoipSettings:
    """A customer's own fields: the numbers it owns and its rates per SMS part."""

    numbers: dict[str, VoipNumber] = field(default_factory=dict)
    bulk_rate: Decimal = Decimal("0.01")  #: per part; "BULK message (lower rate)"
    two_way_rate: Decimal = Decimal("0.02")  #: per part


#: a customer: key is its API key, secret its API password; credit is its prepaid balance in USD
VoipAccount = Customer[VoipSettings]


@dataclass
class VoipSms:
    """One number of one send: what was asked, what it costs, and where it stands."""

    smsid: str
    row_id: int  #: the app's numeric sms_id; the reply row, if any, is row_id + 1
    account: str
    sender: str
    to: str
    text: str
    sale: Decimal
    two_way: bool
    send_at: datetime  #: now, or the delivery_date
    message: SimMessage = field(init=False)
    refused: str = ""  #: why a scheduled message failed when its time came


#: the sandbox customer's own number, which its sample job sends from
VOIP_NUMBER = "17134567890"


class VoipcommsSim(Simulator[VoipSettings]):
    """VoIP Communications api-v2: sms/send, sms/summary, sms/chat; replies pushed to a number's URL."""

    key = "voipcomms"
    settings_type = VoipSettings
    default_credit = Decimal("100")
    #: the vendor is in Houston (its pages are dated -06:00): naive delivery dates are read there
    timezone = "America/Chicago"
    #: the shared number bulk messages leave from (the manual's example shows it with BULKSMS)
    bulk_number = "17134567890"
    sandbox = SandboxCustomer(
        "us-voipcomms", "sandbox-voip", "sandbox-voipcomms-password", "SANDBOX_VOIPCOMMS_PASSWORD",
        {"api_key": "sandbox-voip", "api_password": "${SANDBOX_VOIPCOMMS_PASSWORD}"},
        SampleJob("+12812", "{shop}: your order has shipped", 200, {"from": VOIP_NUMBER}, length=12),
        credit="10000",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sms: dict[str, VoipSms] = {}
        self._scheduled: list[VoipSms] = []  #: not yet gone out (nor charged)
        self._stops: dict[tuple[str, str], datetime] = {}  #: (api key, phone) -> when it answered STOP
        self._rows = itertools.count(1000, 2)

    def join_sandbox(self, callback_url: str) -> VoipAccount:
        """The sandbox customer, with the number its sample job sends from."""
        customer = super().join_sandbox(callback_url)
        self.add_number(customer.key, VOIP_NUMBER)
        return customer

    def add_number(self, key: str, number: str, callback_url: str = "", sms_enabled: bool = True) -> None:
        """Give a customer a number (international digits); replies to it go to ``callback_url`` or its own."""
        self.customers[key].settings.numbers[number] = VoipNumber(number, sms_enabled, callback_url)

    def handle(self, request: SimRequest) -> SimResponse:
        """Route sms/send, sms/summary and sms/chat after Basic authentication."""
        method = request.path.rstrip("/").removeprefix("/api-v2/index.php/")
        routes = {"sms/send": self._send, "sms/summary": self._summary, "sms/chat": self._chat}
        if method not in routes:
            return json_answer({"error": True, "error_message": f"Unknown method {method}"}, 404)
        if request.method != "POST":
            return json_answer({"error": True, "error_message": "Use POST"}, 405)
        credentials = basic_credentials(request)
        account = None if credentials is None else self.authenticate(*credentials)
        if account is None:
            return json_answer({"error": True, "error_message": "Invalid api credentials"}, 401)
        if self.faults.maintenance:
            return json_answer({"error": True, "error_message": "Service under maintenance, try later"}, 503)
        with self.lock:
            self._settle(account)
            return routes[method](account, request.params())

    def _send(self, account: VoipAccount, form: dict[str, str]) -> SimResponse:
        numbers = [n.strip().lstrip("+") for n in form.get("to", "").split(",") if n.strip()]
        text, sender = form.get("msg", ""), form.get("from", "").strip().lstrip("+")
        problem = problem_of(account, numbers, text, sender)
        now = self.now()
        send_at = delivery_date(form.get("delivery_date", ""), account, now)
        if problem or send_at is None:
            return refusal(problem or "Invalid delivery_date, use YYYY-MM-DD HH:MM")
        parts = 1 if len(text) <= SINGLE_CHARS else math.ceil(len(text) / PART_CHARS)
        sale = parts * (account.settings.two_way_rate if sender else account.settings.bulk_rate)
        valid = [n for n in numbers if country_of(n)]
        # Charged now unless scheduled ("the charge will be applied just at the moment of the message
        # be sent"): then _settle charges it when its time comes, or fails it for want of balance.
        if send_at <= now and sale * len(valid) > account.credit:
            return refusal("Not enough balance")
        status = "SCHEDULED" if send_at > now else WORDS["queued"]
        entries = []
        for number in numbers:
            if number not in valid:
                entries.append(bad_number(number, text, sender or self.bulk_number, bool(sender)))
                continue
            sms = VoipSms(
                f"{send_at.year}{self.rng.getrandbits(92):023x}", next(self._rows), account.key,
                sender or self.bulk_number, number, text, sale, bool(sender), send_at,
            )  # fmt: skip
            self._accept(account, sms, now)
            entries.append(_entry(sms, account, status))
        return json_answer({"send_log": entries})

    def _accept(self, account: VoipAccount, sms: VoipSms, now: datetime) -> None:
        phone = "+" + sms.to
        stopped = self._stops.get((account.key, phone))
        if stopped is not None and stopped <= now:
            self.ledger.violation(f"voipcomms {account.key}: sent to {phone} after it answered STOP")
        # A scheduled message starts its progress at its delivery date.
        sms.message = self.store.accept(sms.smsid, phone, sms.text, sms.send_at, sms.two_way, account.key)
        self.sms[sms.smsid] = sms
        self.ledger.sent(phone)
        if sms.send_at <= now:
            self._go_out(account, sms)
        else:
            self._scheduled.append(sms)

    def _settle(self, account: VoipAccount) -> None:
        """Charge the scheduled messages whose time has come; without balance they fail."""
        now = self.now()
        due = [sms for sms in self._scheduled if sms.account == account.key and sms.send_at <= now]
        for sms in sorted(due, key=lambda sms: sms.send_at):
            self._scheduled.remove(sms)
            if sms.sale > account.credit:
                sms.refused, sms.message.delivered, sms.message.reply = "Not enough balance", False, None
            else:
                self._go_out(account, sms)

    def _go_out(self, account: VoipAccount, sms: VoipSms) -> None:
        account.credit -= sms.sale
        message, number = sms.message, account.settings.numbers.get(sms.sender)
        # Only 2-way messages are answered; a failed message draws no reply however the store drew it.
        if not (sms.two_way and message.reply and message.delivered):
            return
        at = message.accepted_at + timedelta(seconds=self.store.progress.reply_after)
        if message.reply.upper() in STOP_WORDS:
            key = (account.key, message.phone)
            self._stops[key] = min(at, self._stops.get(key, at))
        url = number and (number.callback_url or account.callback_url)
        if self.pushes is not None and url:
            # Field names: the manual names none; these are the send form's own (from, to, msg).
            form = {"from": sms.to, "to": sms.sender, "msg": message.reply, "date": _local(at, account)}
            self.pushes.schedule(Push(at, "POST", url, form=form))

    def _replies(self, account: VoipAccount) -> list[VoipSms]:
        arrived = self.store.replies(self.now(), account.key)
        return [self.sms[m.vendor_id] for m in arrived if m.delivered and self.sms[m.vendor_id].two_way]

    def _summary(self, account: VoipAccount, form: dict[str, str]) -> SimResponse:
        rows = self._rows_of(account, lambda sms: True)
        return paged("summary", rows, form.get("page", "0"))

    def _chat(self, account: VoipAccount, form: dict[str, str]) -> SimResponse:
        # Either number may be left out: the rows of every conversation matching the other.
        internal, external = form.get("internal", "").lstrip("+"), form.get("external", "").lstrip("+")
        rows = self._rows_of(account, lambda sms: internal in ("", sms.sender) and external in ("", sms.to))
        return paged("chat", rows, form.get("page", "0"))

    def _rows_of(self, account: VoipAccount, wanted: Callable[[VoipSms], bool]) -> list[dict[str, Any]]:
        """OUT rows of the account's messages and IN rows of the replies that arrived, newest first."""
        now, after = self.now(), self.store.progress.reply_after
        mine = [sms for sms in self.sms.values() if sms.account == account.key and wanted(sms)]
        answered = {sms.smsid for sms in self._replies(account)}
        rows = [self._out_row(sms, account, now) for sms in mine]
        rows += [_in_row(sms, account, after) for sms in mine if sms.smsid in answered]
        return sorted(rows, key=lambda row: row["sms_id"], reverse=True)

    def _out_row(self, sms: VoipSms, account: VoipAccount, now: datetime) -> dict[str, Any]:
        progress, since = self.store.progress, sms.send_at
        if now < sms.send_at:
            word = "SCHEDULED"  # dated when it will go
        elif sms.refused:
            word = "FAILED"
        else:
            state = self.store.state(sms.message, now)
            word = WORDS[state]
            offset = {"queued": 0.0, "sent": progress.to_sent}.get(state, progress.to_final)
            since = sms.send_at + timedelta(seconds=offset)
        return _row(sms, account, word, "OUT", sms.text, since) | {"sms_sale": str(sms.sale)}


def _entry(sms: VoipSms, account: VoipAccount, status: str) -> dict[str, Any]:
    """A send_log entry, fields in the manual's order."""
    return {
        "code": 200,
        "code_desc": "",
        "from": sms.sender,
        "to": sms.to,
        "country": country_of(sms.to),
        "msg": sms.text,
        "delivery_date": _local(sms.send_at, account),
        "sale": float(sms.sale),
        "type": TWO_WAY if sms.two_way else BULK,
        "status": status,
        "smsid": sms.smsid,
    }


def _in_row(sms: VoipSms, account: VoipAccount, reply_after: float) -> dict[str, Any]:
    at = sms.message.accepted_at + timedelta(seconds=reply_after)
    row = _row(sms, account, "RECEIVED", "IN", sms.message.reply or "", at, sms.row_id + 1)
    return row | {"sms_sale": "0"}


def _row(
    sms: VoipSms, account: VoipAccount, word: str, inout: str, text: str, at: datetime, row_id: int = 0
) -> dict[str, Any]:
    # smsid is not among the app's fields: it is repeated so a summary row can be matched to its send.
    return {
        "sms_id": row_id or sms.row_id,
        "smsid": sms.smsid,
        "sms_country": country_of(sms.to),
        "sms_status": word,
        "sms_internal": sms.sender,
        "sms_external": sms.to,
        "sms_status_date": _local(at, account),
        "sms_msg": text,
        "sms_inout": inout,
    }


def _local(at: datetime, account: VoipAccount) -> str:
    return wall_clock(at, account.timezone).strftime(DAY)


#: the simulator the sandbox world starts for this vendor
SIMULATOR = VoipcommsSim
