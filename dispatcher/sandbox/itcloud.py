"""IT Cloud as its manual describes it: per-phone codes, CRC hours, the 5000 cap, balances.

It also counts what the real vendor only frowns on: two requests of one user less than 2 s
apart, and requests of more than 1000 numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dispatcher.sandbox.core import MessageStore, Push, PushQueue, SimRequest, SimResponse, Simulator

BOGOTA = ZoneInfo("America/Bogota")
METHODS = ("1via", "2via", "flash")


@dataclass
class ItCloudUser:
    """A simulated customer: token, password (balance queries) and credit."""

    token: str
    password: str = ""
    balance: int = 1_000_000
    blocked: set[str] = field(default_factory=set)
    #: where replies to 2via messages are pushed (GET mensaje, celular), if anywhere
    mo_url: str | None = None


class ItCloudSim(Simulator):
    key = "itcloud"
    handset_receipts = False  #: the manual offers no delivery report
    #: seconds the manual asks between two requests
    min_interval = 2.0
    #: numbers the manual asks per request
    batch_size = 1000

    def __init__(
        self, *args: Any, store: MessageStore | None = None, pushes: PushQueue | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.store = store or MessageStore()
        self.pushes = pushes
        self.users: dict[str, ItCloudUser] = {}
        self._ids = itertools.count(12102253)
        self._last: dict[str, float] = {}

    def add_user(
        self, user: str, token: str, password: str = "", balance: int = 1_000_000, mo_url: str | None = None
    ) -> ItCloudUser:
        """Create a customer with a token, a password for balance queries, credit and an MO URL."""
        self.users[user] = ItCloudUser(token, password, balance, mo_url=mo_url)
        return self.users[user]

    def handle(self, request: SimRequest) -> SimResponse:
        if request.path.rstrip("/").endswith("/api/sendsms"):
            return self._send(request)
        if request.path.endswith("query.php"):
            return self._balance(request)
        return SimResponse(404, "Not Found")

    def _balance(self, request: SimRequest) -> SimResponse:
        params = request.params()
        user = self.users.get(params.get("user", ""))
        secret = params.get("password") or params.get("token")
        if user is None or secret not in (user.password, user.token):
            return SimResponse(body="-1")
        return SimResponse(body=str(user.balance))

    def _send(self, request: SimRequest) -> SimResponse:
        params = request.params()
        name = params.get("user", "")
        user = self.users.get(name)
        if user is None or params.get("token") != user.token:
            return SimResponse(body="-1")
        numbers = [n.strip() for n in params.get("GSM", "").split(",") if n.strip()]
        self._check_pace(name, request, len(numbers))
        if len(numbers) > 5000:
            return SimResponse(body="-7")
        if self.faults.maintenance:
            return SimResponse(body="\n".join(f"{n},-6" for n in numbers))
        text = params.get("SMSText", "")
        method = params.get("metodo_envio", "1via")
        local = self.now().astimezone(BOGOTA)
        lines = [f"{n},{self._code(user, n, text, method, local.hour)}" for n in numbers]
        return SimResponse(body="\n".join(lines))

    def _accept(self, user: ItCloudUser, number: str, text: str, method: str) -> str:
        vendor_id = str(next(self._ids))
        phone = "+" + number.removeprefix("0")
        message = self.store.accept(vendor_id, phone, text, self.now(), two_way=method == "2via")
        self.ledger.sent(phone)
        if message.reply and user.mo_url and self.pushes:
            # The manual: replies reach the customer's URL as GET mensaje, celular.
            at = message.accepted_at + timedelta(seconds=self.store.progress.reply_after)
            self.pushes.schedule(
                Push(at, "GET", user.mo_url, params={"mensaje": message.reply, "celular": number})
            )
        return vendor_id

    def _code(self, user: ItCloudUser, number: str, text: str, method: str, hour: int) -> str:
        if not (8 <= hour < 21):
            return "-2"
        if len(number) != 12 or not number.isdigit():
            return "-4"
        if not text or len(text) > 765:
            return "-5"
        if method not in METHODS:
            return "-11"
        if number in user.blocked:
            return "-8"
        if number.startswith("57380"):
            return "0"
        if user.balance <= 0:
            return "-3"
        user.balance -= 1
        return self._accept(user, number, text, method)

    def _check_pace(self, user: str, request: SimRequest, count: int) -> None:
        with self.lock:
            last = self._last.get(user)
            self._last[user] = request.at
        if last is not None and request.at - last < self.min_interval:
            self.ledger.violation(f"itcloud {user}: requests {request.at - last:.3f}s apart")
        if count > self.batch_size:
            self.ledger.violation(f"itcloud {user}: {count} numbers in one request")
