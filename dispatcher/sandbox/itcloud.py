"""IT Cloud as its manual describes it: per-phone codes, CRC hours, the 5000 cap, balances.

It also counts what the real vendor only frowns on: two requests of one user less than 2 s
apart, and requests of more than 1000 numbers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from dispatcher.sandbox.core import SimRequest, SimResponse
from dispatcher.sandbox.messages import Push
from dispatcher.sandbox.samples import SampleJob, SandboxCustomer
from dispatcher.sandbox.skeleton import Customer, Simulator, plain_reply

METHODS = ("1via", "2via", "flash")


@dataclass
class ItCloudSettings:
    """An IT Cloud customer's own field: the password its balance queries may give instead of the token."""

    password: str = ""


#: a customer: key is the ``user``, secret the ``token``; replies to 2via messages go to its
#: callback URL as GET mensaje, celular
ItCloudUser = Customer[ItCloudSettings]


class ItCloudSim(Simulator[ItCloudSettings]):
    """IT Cloud: sendsms and the balance query, per user and token."""

    key = "itcloud"
    handset_receipts = False  #: the manual offers no delivery report
    settings_type = ItCloudSettings
    timezone = "America/Bogota"
    #: seconds the manual asks between two requests
    min_interval = 2.0
    #: numbers the manual asks per request
    batch_size = 1000
    sandbox = SandboxCustomer(
        "co-itcloud", "demo@example.com", "sandbox-itcloud-token", "SANDBOX_ITCLOUD_TOKEN",
        {"user": "demo@example.com", "token": "${SANDBOX_ITCLOUD_TOKEN}"},
        SampleJob("+57300", "{shop}: su pedido va en camino", 2500, {"metodo_envio": "2via"}),
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ids = itertools.count(12102253)
        self._last: dict[str, float] = {}

    def sandbox_account(self, base_url: str) -> dict[str, Any]:
        """The sandbox account, its balance queries sent to this simulator too."""
        return {**super().sandbox_account(base_url), "balance_url": base_url + "/query.php"}

    def handle(self, request: SimRequest) -> SimResponse:
        """Route sendsms and query.php; anything else is 404."""
        if request.path.rstrip("/").endswith("/api/sendsms"):
            return self._send(request)
        if request.path.endswith("query.php"):
            return self._balance(request)
        return plain_reply("Not Found", 404)

    def _balance(self, request: SimRequest) -> SimResponse:
        params = request.params()
        user = self.customers.get(params.get("user", ""))
        # The manual's query gives the password; the token opens it too.
        secret = params.get("password") or params.get("token")
        if user is None or secret is None or secret not in (user.settings.password, user.secret):
            return plain_reply("-1")
        return plain_reply(str(user.credit))

    def _send(self, request: SimRequest) -> SimResponse:
        params = request.params()
        name = params.get("user", "")
        user = self.authenticate(name, params.get("token", ""))
        if user is None:
            return plain_reply("-1")
        numbers = [n.strip() for n in params.get("GSM", "").split(",") if n.strip()]
        self._check_pace(name, request, len(numbers))
        if len(numbers) > 5000:
            return plain_reply("-7")
        if self.faults.maintenance:
            return plain_reply("\n".join(f"{n},-6" for n in numbers))
        text = params.get("SMSText", "")
        method = params.get("metodo_envio", "1via")
        hour = self.local(self.now()).hour
        lines = [f"{n},{self._code(user, n, text, method, hour)}" for n in numbers]
        return plain_reply("\n".join(lines))

    def _accept(self, user: ItCloudUser, number: str, text: str, method: str) -> str:
        vendor_id = str(next(self._ids))
        phone = "+" + number.removeprefix("0")
        message = self.store.accept(vendor_id, phone, text, self.now(), two_way=method == "2via")
        self.ledger.sent(phone)
        if message.reply and user.callback_url and self.pushes:
            # The manual: replies reach the customer's URL as GET mensaje, celular.
            at = message.accepted_at + timedelta(seconds=self.store.progress.reply_after)
            self.pushes.schedule(
                Push(at, "GET", user.callback_url, params={"mensaje": message.reply, "celular": number})
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
        if user.credit <= 0:
            return "-3"
        user.credit -= 1
        return self._accept(user, number, text, method)

    def _check_pace(self, user: str, request: SimRequest, count: int) -> None:
        with self.lock:
            last = self._last.get(user)
            self._last[user] = request.at
        if last is not None and request.at - last < self.min_interval:
            self.ledger.violation(f"itcloud {user}: requests {request.at - last:.3f}s apart")
        if count > self.batch_size:
            self.ledger.violation(f"itcloud {user}: {count} numbers in one request")


#: the simulator the sandbox world starts for this vendor
SIMULATOR = ItCloudSim
