"""Ogangi (Messangi) as its manual (seeds/004) describes it: signed GET paths, XML envelopes, callbacks.

Every call is ``/rest/api/{method}/{instanceId}/{values...}/{publicKey}/{signature}``, signed with
HMAC-SHA256 under the private key (lowercase hex) over the values from the instance id on, joined
by '/' as they stand in the URL (VENDORS.md, from the vendor's wiki). Replies are the manual's
envelope, printed as the manual prints it (no root element)::

    <input>sendSMS</input> <status>OK</status> <description>Completed</description> <result> <messages>
    <message> <id>-8174720676710228700</id> ... <status>SENT_TO_CARRIER</status> ... </message> ...

Status changes and replies (MO) are POSTed as forms to the account's callback URL.
"""

from __future__ import annotations

import hmac
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from dispatcher.sandbox.core import SimRequest, SimResponse
from dispatcher.sandbox.messages import STOP_WORDS, Push, SimMessage
from dispatcher.sandbox.ogangi_wire import METHODS, element, envelope, from_b64, mo_filters, parse_call, sign
from dispatcher.sandbox.samples import SampleJob, SandboxCustomer
from dispatcher.sandbox.skeleton import Customer, Simulator, plain_reply

#: the message status words this sandbox produces, with their <statusDescription>
MESSAGE_WORDS = {
    "SENT_TO_CARRIER": "Sent to Carrier",  # the manual's example at origination
    "DELIVERED_TO_CARRIER": "Delivered to Carrier",
    "DELIVERED_TO_DEVICE": "Message delivered to device",
    "UNDELIVERED": "Message not delivered to device",
    "NOT_ENOUGH_FUNDS": "Message not sent: not enough funds",
    "BAD_FROM": "Message not sent: invalid 'from'",
    "BAD_CARRIER/FROM": "Message not sent: invalid 'carrier' or 'from'",
    "BAD_TO": "Message not sent: invalid 'to'",
    "BAD_ENCODING": "Message not sent: invalid encoding",
    "NOT_SENT": "The message could not be sent: empty text",  # no word for an empty text: the generic one
}
#: store state -> the STATUS of the callback sent when a message reaches it
CALLBACK_WORDS = {"sent": "DELIVERED_TO_CARRIER", "delivered": "DELIVERED_TO_DEVICE", "failed": "UNDELIVERED"}
_NUMBER = re.compile(r"^\d{8,15}$")


@dataclass
class OgangiSettings:
    """A workspace's own fields: its instance id, short/long codes, carriers, client id, keywords."""

    instance_id: str
    codes: tuple[str, ...] = ("19893653744",)
    carriers: tuple[str, ...] = ("Movistar", "Digitel", "Movilnet")  #: case sensitive, as the manual says
    client_id: str = "As223sdadq8d8287v5v"
    keywords: tuple[str, ...] = ()  #: campaign keyword regexes an MO is filed under


#: a workspace: key is its public key, secret its private key (signatures), credit counts SMS parts;
#: status changes and MOs are POSTed to its callback URL
OgangiAccount = Customer[OgangiSettings]


@dataclass(frozen=True)
class MoMessage:
    """A received message as getMOMessages lists it."""

    text: str
    phone: str  #: the handset's digits
    to: str  #: our code
    carrier: str
    at: datetime
    keyword: str


#: the sandbox customer's short code, which its sample job sends from
OGANGI_CODE = "19893653744"


class OgangiSim(Simulator[OgangiSettings]):
    """Ogangi's signed GET methods: sendSMS, sendMT, the PIN, fireMessage, getMOMessages."""

    key = "ogangi"
    settings_type = OgangiSettings
    timezone = "America/Caracas"
    sandbox = SandboxCustomer(
        "ve-ogangi", "sandbox-public", "sandbox-ogangi-private-key", "SANDBOX_OGANGI_PRIVATE_KEY",
        {"instance_id": "8", "public_key": "sandbox-public", "private_key": "${SANDBOX_OGANGI_PRIVATE_KEY}",
         "from": OGANGI_CODE},
        SampleJob("+58414", "{shop}: su saldo fue actualizado", 40, {"from": OGANGI_CODE}),
        settings={"instance_id": "8", "codes": (OGANGI_CODE,)},
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fired: list[tuple[str, MoMessage]] = []  #: (instance id, MO) injected by fireMessage
        self.routes: dict[str, tuple[str, str]] = {}  #: vendor id -> (from, carrier) it left by
        self._stops: dict[tuple[str, str], datetime] = {}  #: (instance, handset) -> when it said STOP

    def handle(self, request: SimRequest) -> SimResponse:
        """Route a signed method call after checking its signature."""
        call = parse_call(request.path)
        if call is None:
            return plain_reply("Not Found", 404)
        method, values, public_key, signature = call
        name = method.rsplit("/", 1)[-1]
        if request.method != "GET":
            # Only the GET methods are simulated (fireMessage's POST takes an undocumented descriptor).
            return plain_reply("Method Not Allowed", 405)
        account = self.customers.get(unquote(public_key))
        # An unknown public key, or a workspace the key pair does not open, is a bad signature too.
        if (
            account is None
            or values[0] != account.settings.instance_id
            or not _signed_by(account, values, signature)
        ):
            return envelope(name, "BAD_SIGNATURE")
        if self.faults.maintenance:
            return envelope(name, "ERROR", "Service under maintenance, try again later")
        # sendMT's optional flags are taken and ignored: what they do is the vendor's backend's business.
        args = dict(zip(METHODS[method], values[1:], strict=False))
        handlers = {"sendSMS": self._send, "sendMT": self._send, "fireMessage": self._fire}
        handlers |= {"sendSMSPinMobileNumberConfirm": self._pin, "getMOMessages": self._mo_messages}
        with self.lock:
            return handlers[name](account, name, args)

    def _send(self, account: OgangiAccount, name: str, args: dict[str, str]) -> SimResponse:
        mobile = from_b64(args["mobile64"]) if "mobile64" in args else unquote(args["mobile"])
        text, sender, carrier = from_b64(args["text64"]), unquote(args["from"]), unquote(args["carrier"])
        word = self._check(account, sender, carrier, mobile, text)
        vendor_id = str(-self.rng.randrange(1, 2**63))  # the manual's ids are negative longs
        if word == "SENT_TO_CARRIER":
            self._accept(account, vendor_id, (sender, carrier), mobile or "", text or "", two_way=True)
        if name == "sendMT":
            # The manual shows sendMT's bare envelope; a refusal has no documented form, so ERROR says it.
            return envelope(name) if word == "SENT_TO_CARRIER" else envelope(name, "ERROR", _refusal(word))
        date = self.local(self.now(), account).isoformat(timespec="milliseconds")
        message = {
            "id": vendor_id, "carrier": self._carrier(account, carrier), "from": sender,
            "to": mobile if mobile is not None else args["mobile64"], "text": text or "", "status": word,
            "statusDescription": MESSAGE_WORDS[word], "encoding": "UTF-8", "date": date,
            "timezone": account.timezone, "clientId": account.settings.client_id,
        }  # fmt: skip
        return envelope(name, result=f"<messages> {element('message', message)} </messages>")

    def _pin(self, account: OgangiAccount, name: str, args: dict[str, str]) -> SimResponse:
        length, mobile, text = args["length"], unquote(args["mobile"]), from_b64(args["text64"])
        if not length.isdigit() or not 1 <= int(length) <= 12:
            return envelope(name, "ERROR", f"Invalid length {length!r}")
        sender, carrier = unquote(args["from"]), unquote(args["carrier"])
        word = self._check(account, sender, carrier, mobile, text)
        if word != "SENT_TO_CARRIER":
            return envelope(name, "ERROR", _refusal(word))
        pin = "".join(str(self.rng.randrange(10)) for _ in range(int(length)))
        # Where the PIN goes in the text is not documented: after it.
        vendor_id = str(-self.rng.randrange(1, 2**63))
        self._accept(account, vendor_id, (sender, carrier), mobile, f"{text} {pin}", two_way=False)
        return envelope(name, result=f"<PinSMSConfirmation> <pin>{pin}</pin> </PinSMSConfirmation>")

    def _fire(self, account: OgangiAccount, name: str, args: dict[str, str]) -> SimResponse:
        mobile, text, settings = unquote(args["mobile"]), from_b64(args["text64"]), account.settings
        if not _NUMBER.match(mobile) or text is None:
            return envelope(name, "ERROR", "Invalid mobileNumber or text")
        # The manual gives a fired MO no carrier: it takes the workspace's first.
        mo = MoMessage(text, mobile, settings.codes[0], settings.carriers[0], self.now(), _keyword(account, text))
        self.fired.append((settings.instance_id, mo))
        self._take_mo(account, mo)
        fields = {"instanceId": settings.instance_id, "mobileNumber": mobile, "text": text}
        # The GET example prints <input>activateCampaign</input> and no result (a slip of the manual):
        # this answers as its POST twin does, echoing the MO taken.
        return envelope(name, result=element("mo", fields))

    def _mo_messages(self, account: OgangiAccount, name: str, args: dict[str, str]) -> SimResponse:
        page, per_page = args["page"], args["per_page"]
        filters = mo_filters(args["parameters"])
        if not page.isdigit() or not per_page.isdigit() or int(per_page) < 1 or filters is None:
            return envelope(name, "ERROR", "Invalid page, resultsPerPage or parameters")
        rows = sorted((mo for mo in self._mos(account) if _matches(mo, filters)), key=lambda mo: mo.at)
        if filters.get("order", ["asc"])[0].lower() == "desc":
            rows.reverse()
        # Pages count from 0 (not documented; Java paging's habit).
        start = int(page) * int(per_page)
        listed = " ".join(self._mo_element(account, mo) for mo in rows[start : start + int(per_page)])
        # The manual's example never closes <MOMessageList> (it repeats the opening tag); this closes it.
        listing = f"<MOMessageList> <records>{len(rows)}</records> <MessageList> {listed} </MessageList>"
        return envelope(name, result=listing + " </MOMessageList>")

    def _check(
        self, account: OgangiAccount, sender: str, carrier: str, mobile: str | None, text: str | None
    ) -> str:
        """The status word a new message gets at origination."""
        if sender not in account.settings.codes:
            return "BAD_FROM"
        # 'null' (let the CM pick) is documented for sendMT only; taken everywhere (not documented).
        if carrier != "null" and carrier not in account.settings.carriers:
            return "BAD_CARRIER/FROM"
        if mobile is None or not _NUMBER.match(mobile):
            return "BAD_TO"
        if text is None:
            return "BAD_ENCODING"
        if not text:
            return "NOT_SENT"
        return "SENT_TO_CARRIER" if account.credit >= _parts(text) else "NOT_ENOUGH_FUNDS"

    def _accept(
        self,
        account: OgangiAccount,
        vendor_id: str,
        route: tuple[str, str],
        mobile: str,
        text: str,
        two_way: bool,
    ) -> None:
        """Charge, store and count a message leaving by ``route`` (from, carrier); plan its callbacks."""
        phone, now = "+" + mobile, self.now()
        instance = account.settings.instance_id
        stopped = self._stops.get((instance, mobile))
        if stopped is not None and stopped <= now:
            self.ledger.violation(f"ogangi {instance}: sent to {phone} after it answered STOP")
        account.credit -= _parts(text)
        # Any code takes replies, so every message but a PIN may draw one.
        message = self.store.accept(vendor_id, phone, text, now, two_way, instance)
        self.routes[vendor_id] = (route[0], self._carrier(account, route[1]))
        self.ledger.sent(phone)
        self._schedule_reports(account, message, route[0])
        reply = self._reply_mo(account, message)
        if reply is not None:
            self._take_mo(account, reply)

    def _schedule_reports(self, account: OgangiAccount, message: SimMessage, sender: str) -> None:
        """The status callbacks, due at the moments the store moves the message."""
        if self.pushes is None or not account.callback_url:
            return
        progress = self.store.progress
        final = "delivered" if message.delivered else "failed"
        for after, state in ((progress.to_sent, "sent"), (progress.to_final, final)):
            form = {
                "TYPE": "SMS", "CLIENT_ID": account.settings.client_id, "MESSANGI_ID": message.vendor_id,
                "STATUS": CALLBACK_WORDS[state], "FROM": sender, "TO": message.phone.lstrip("+"),
                "MESSAGE_BODY": message.text,
            }  # fmt: skip
            at = message.accepted_at + timedelta(seconds=after)
            self.pushes.schedule(Push(at, "POST", account.callback_url, form=form))

    def _take_mo(self, account: OgangiAccount, mo: MoMessage) -> None:
        """Note a stop word, and push the MO to the callback URL when it arrives."""
        if mo.text.strip().upper() in STOP_WORDS:
            key = (account.settings.instance_id, mo.phone)
            self._stops[key] = min(mo.at, self._stops.get(key, mo.at))
        if self.pushes is not None and account.callback_url:
            form = {"FROM": mo.phone, "TO": mo.to, "TEXT": mo.text, "ENCODING": "UTF-8", "TYPE": "MO_MESSAGE"}
            self.pushes.schedule(Push(mo.at, "POST", account.callback_url, form=form))

    def _reply_mo(self, account: OgangiAccount, message: SimMessage) -> MoMessage | None:
        # A message that never arrived draws no reply, however the store drew it.
        if not message.reply or not message.delivered:
            return None
        sender, carrier = self.routes[message.vendor_id]
        at = message.accepted_at + timedelta(seconds=self.store.progress.reply_after)
        return MoMessage(
            message.reply, message.phone.lstrip("+"), sender, carrier, at, _keyword(account, message.reply)
        )

    def _mos(self, account: OgangiAccount) -> list[MoMessage]:
        """Replies arrived by now and MOs fired, of this workspace."""
        arrived = self.store.replies(self.now(), account.settings.instance_id)
        replies = [self._reply_mo(account, m) for m in arrived]
        return [mo for mo in replies if mo] + [
            mo for instance, mo in self.fired if instance == account.settings.instance_id
        ]

    def _mo_element(self, account: OgangiAccount, mo: MoMessage) -> str:
        # 'from' is the handset as in the manual's example (its field table says the opposite).
        # sendDate as the example writes it (2014-10-13 10:30:51.922), not as the field table does.
        local = self.local(mo.at, account).isoformat(" ", "milliseconds")[:23]
        fields = {
            "text": mo.text, "from": mo.phone, "to": mo.to, "encoding": "UTF-8", "keyword": mo.keyword,
            "carrier": mo.carrier, "sendDate": local,
        }  # fmt: skip
        return element("MOMessage", fields)

    def _carrier(self, account: OgangiAccount, carrier: str) -> str:
        return account.settings.carriers[0] if carrier == "null" else carrier


def _signed_by(account: OgangiAccount, values: list[str], signature: str) -> bool:
    return hmac.compare_digest(sign("/".join(values), account.secret), signature)


def _matches(mo: MoMessage, filters: dict[str, list[str]]) -> bool:
    # keyword names the campaign keyword an MO was filed under; as a regex it may also match the text.
    keyword = filters.get("keyword")
    return (
        ("carrier" not in filters or mo.carrier.lower() in [c.lower() for c in filters["carrier"]])
        and ("to" not in filters or mo.to in filters["to"])
        and ("from" not in filters or mo.phone in filters["from"])
        and (not keyword or any(k == mo.keyword or re.search(k, mo.text) for k in keyword))
    )


def _keyword(account: OgangiAccount, text: str) -> str:
    # An MO matching no keyword is filed under the first (default) campaign, as the manual's example
    # files 'Test' under ^OGANGI.*.
    keywords = account.settings.keywords
    default = keywords[0] if keywords else ""
    return next((k for k in keywords if re.match(k, text, re.IGNORECASE)), default)


def _parts(text: str) -> int:
    # Not documented for these methods: charged like concatenated SMS (160, then 153 per part).
    return 1 if len(text) <= 160 else math.ceil(len(text) / 153)


def _refusal(word: str) -> str:
    return f"{word}: {MESSAGE_WORDS[word]}"


#: the simulator the sandbox world starts for this vendor
SIMULATOR = OgangiSim
