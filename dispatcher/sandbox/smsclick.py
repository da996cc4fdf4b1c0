"""SMSClick as its manual (seeds/002, Spanish) describes it: form POSTs with APIKEY, ``codigo`` answers.

Where the manual is silent this simulator chooses, and says so where it does:

- checks run in the order of the manual's codes (-100, -101, -102, -103, -105, -104); a refused
  message costs nothing;
- a message costs one credit per started 150 characters ("después de 150 caracteres se cobrarán
  créditos adicionales"); no maximum length is documented, so none is enforced;
- statuses: queued is 0 (pendiente) for the first half of the wait and 1 (en proceso) after; sent is
  2, delivered 3 (recibido), failed 4 (rechazado);
- ``respuesta`` is the text "NULL" for a message without an interactive rule (the manual: "viene con
  valor NULL") and JSON null for an interactive one not answered yet;
- messages sent through the API fall in the account's API campaign (``campaign_id``, for the
  report's ID_CAMPANIA filter); dates are Mexico City wall time;
- fields may come in the form or the query string (PHP's $_REQUEST); only POST is served, anything
  else is an HTML 404, and maintenance is an HTML 503 (no maintenance code is documented).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dispatcher.sandbox.core import SimRequest, SimResponse
from dispatcher.sandbox.messages import SimMessage
from dispatcher.sandbox.samples import SampleJob, SandboxCustomer
from dispatcher.sandbox.skeleton import Customer, Simulator, html_reply, json_reply, read_date

DATE = "%d-%m-%Y %H:%M:%S"  #: DD-MM-AAAA HH:mm:ss
CHARS_PER_CREDIT = 150
#: each endpoint's answers to a missing / wrong APIKEY, and the null fields its errors carry
SEND_AUTH = ("Parámetro APIKEY no definido", "APIKEY incorrecta")
QUERY_AUTH = ("Apikey no definida", "Apikey incorrecta")
GET_NULLS = {"estatus_mensaje": None, "fecha_recepcion": None, "respuesta": None}
LIST_NULLS = {"mensajes": None}
#: the interactive rule the sandbox customer has (two-way messages)
SMSCLICK_RULE = "77"
_STATUSES = re.compile(r"[0-4](,[0-4])*")


@dataclass
class SmsclickSettings:
    """A customer's own fields: its interactive rules and the campaign its API messages fall in."""

    rules: frozenset[str] = frozenset()  #: known ID_REGLA_INTERACTIVA values
    campaign_id: int = 1
    campaign_name: str | None = None
    portfolio: str | None = None

    def __post_init__(self) -> None:
        # Rule ids arrive as form text: "77" however they were given.
        self.rules = frozenset(map(str, self.rules))


#: a customer: key is its name, secret its APIKEY; credit counts its créditos
SmsclickAccount = Customer[SmsclickSettings]


@dataclass
class SentRecord:
    """What the vendor keeps of an accepted message beyond the shared store."""

    account: SmsclickAccount
    telefono: str  #: the 10 digits as sent
    interactive: bool
    message: SimMessage


class Refusal(Exception):
    """A request answered with an error ``codigo``."""

    def __init__(self, codigo: int, descripcion: str):
        super().__init__(codigo, descripcion)
        self.codigo, self.descripcion = codigo, descripcion


class SmsclickSim(Simulator[SmsclickSettings]):
    """SMSClick: sendMsg, getMsg, report and credits, per APIKEY."""

    key = "smsclick"
    settings_type = SmsclickSettings
    default_credit = 1000
    timezone = "America/Mexico_City"
    sandbox = SandboxCustomer(
        "mx-smsclick", "demo", "sandbox-smsclick-apikey", "SANDBOX_SMSCLICK_APIKEY",
        {"apikey": "${SANDBOX_SMSCLICK_APIKEY}"},
        SampleJob("+52552", "{shop}: responda SI para confirmar", 40, {"ID_REGLA_INTERACTIVA": SMSCLICK_RULE}),
        credit=1_000_000, pushes=False, settings={"rules": (SMSCLICK_RULE,)},
    )  # fmt: skip

    def __init__(self, *args: Any, first_id: int = 123, **kw: Any):
        super().__init__(*args, **kw)
        self.sent: dict[str, SentRecord] = {}
        self._ids = itertools.count(first_id)  # the manual's example answers id_mensaje 123

    def handle(self, request: SimRequest) -> SimResponse:
        """Route by path, then answer as the manual does."""
        route = ENDPOINTS.get(request.path.rstrip("/"))
        if route is None or request.method != "POST":
            return html_reply("<html><body><h1>404 Not Found</h1></body></html>", 404)
        if self.faults.maintenance:
            return html_reply("<html><body>Sitio en mantenimiento</body></html>", 503)
        endpoint, auth, nulls = route
        params = request.params()
        try:
            return json_reply(endpoint(self, self._authenticate(params, auth), params))
        except Refusal as refusal:
            return json_reply({"codigo": refusal.codigo, "descripcion": refusal.descripcion, **nulls})

    def _authenticate(self, params: dict[str, str], auth: tuple[str, str]) -> SmsclickAccount:
        apikey = params.get("APIKEY", "").strip()
        if not apikey:
            raise Refusal(-100, auth[0])
        account = self.authenticate(None, apikey)
        if account is None:
            raise Refusal(-101, auth[1])
        return account

    def _send(self, account: SmsclickAccount, params: dict[str, str]) -> dict[str, Any]:
        telefono = params.get("TELEFONO", "").strip()
        if len(telefono) != 10 or not telefono.isdigit():
            raise Refusal(-102, "Parametro TELEFONO no valido")
        text = params.get("MENSAJE", "")
        if not text.strip():
            raise Refusal(-103, "Parametro MENSAJE vacio")
        rule = params.get("ID_REGLA_INTERACTIVA", "").strip()
        if rule and rule not in account.settings.rules:
            raise Refusal(-105, "El valor ID_REGLA_INTERACTIVA no existe")
        cost = max(1, math.ceil(len(text) / CHARS_PER_CREDIT))
        with self.lock:
            if account.credit < cost:
                raise Refusal(-104, "Saldo insuficiente")
            account.credit -= cost
            vendor_id = next(self._ids)
        phone = "+52" + telefono
        message = self.store.accept(str(vendor_id), phone, text, self.now(), bool(rule), account.key)
        with self.lock:
            self.sent[str(vendor_id)] = SentRecord(account, telefono, bool(rule), message)
        self.ledger.sent(phone)
        # The success example spells creditosUsados (the field table creditos_usados).
        return {
            "codigo": 1,
            "descripcion": "Mensaje enviado",
            "id_mensaje": vendor_id,
            "creditosUsados": cost,
        }

    def _get(self, account: SmsclickAccount, params: dict[str, str]) -> dict[str, Any]:
        asked = params.get("ID_MENSAJE", "").strip()
        if not asked.isdigit():
            raise Refusal(-200, "Identificador de mensaje no válido")
        with self.lock:
            record = self.sent.get(str(int(asked)))
        if record is None or record.account is not account:
            raise Refusal(-201, "Identificador de mensaje no existe")
        reply, replied_at = self._reply(record)
        return {
            "codigo": 1,
            "descripcion": "ok",
            **self._common(record),
            "respuesta": reply,
            "fecha_respuesta": replied_at,
        }

    def _report(self, account: SmsclickAccount, params: dict[str, str]) -> dict[str, Any]:
        start = _date(params.get("FECHA_INICIO"), -300, "Parametro FECHA_INICIO vacío o formato incorrecto")
        end = _date(params.get("FECHA_FIN"), -301, "Parametro FECHA_FIN vacío formato incorrecto")
        statuses = params.get("ESTATUS_MENSAJE", "").replace(" ", "")
        if statuses and not _STATUSES.fullmatch(statuses):
            raise Refusal(-302, "Parametro ESTATUS_MENSAJE formato incorrecto")
        campaign = params.get("ID_CAMPANIA", "").strip()
        if campaign and not campaign.isdigit():
            raise Refusal(-303, "Parametro ID_CAMPANIA formato incorrecto")
        wanted = {int(s) for s in statuses.split(",")} if statuses else None
        with self.lock:
            records = [(i, r) for i, r in self.sent.items() if r.account is account]
        items = []
        for vendor_id, record in records:
            sent_at = self.wall(record.message.accepted_at)
            if not start <= sent_at <= end or (campaign and int(campaign) != account.settings.campaign_id):
                continue
            item = {"id_mensaje": int(vendor_id), **self._common(record)}
            if wanted is None or item["estatus_mensaje"] in wanted:
                items.append({**item, **self._report_extra(record)})
        return {"codigo": 1, "descripcion": "ok", "mensajes": items}

    def _credits(self, account: SmsclickAccount, params: dict[str, str]) -> dict[str, Any]:
        return {"codigo": 1, "descripcion": "ok", "creditos": account.credit}

    def _common(self, record: SentRecord) -> dict[str, Any]:
        """The fields getMsg and report share, in the manual's order."""
        return {
            "estatus_mensaje": self.status_code(record.message, self.now()),
            "telefono": int(record.telefono),
            "mensaje": record.message.text,
            "fecha_envio": self.wall(record.message.accepted_at).strftime(DATE),
        }

    def _report_extra(self, record: SentRecord) -> dict[str, Any]:
        reply, replied_at = self._reply(record)
        return {
            "nombre_campania": record.account.settings.campaign_name,  # "solo si aplica"
            "portafolio": record.account.settings.portfolio,
            "fecha_respuesta": replied_at,
            "respuesta_cliente": reply,
        }

    def status_code(self, message: SimMessage, now: datetime) -> int:
        """The manual's estatus_mensaje of a message at ``now``."""
        state = self.store.state(message, now)
        if state == "queued":
            age = (now - message.accepted_at).total_seconds()
            return 0 if age < self.store.progress.to_sent / 2 else 1
        return {"sent": 2, "delivered": 3}.get(state, 4)

    def _reply(self, record: SentRecord) -> tuple[str | None, str | None]:
        """The handset's answer and its date once it has arrived."""
        if not record.interactive:
            return "NULL", None
        message = record.message
        arrives = message.accepted_at + timedelta(seconds=self.store.progress.reply_after)
        if message.reply is None or self.now() < arrives:
            return None, None
        return message.reply, self.wall(arrives).strftime(DATE)


Endpoint = Callable[[SmsclickSim, SmsclickAccount, dict[str, str]], dict[str, Any]]
ENDPOINTS: dict[str, tuple[Endpoint, tuple[str, str], dict[str, None]]] = {
    "/sms-services/sendMsg.json": (SmsclickSim._send, SEND_AUTH, {}),
    "/sms-services/getMsg.json": (SmsclickSim._get, QUERY_AUTH, GET_NULLS),
    "/sms-services/report.json": (SmsclickSim._report, QUERY_AUTH, LIST_NULLS),
    # The manual's credits errors carry "mensajes": null too.
    "/sms-services/credits.json": (SmsclickSim._credits, QUERY_AUTH, LIST_NULLS),
}


def _date(value: str | None, codigo: int, descripcion: str) -> datetime:
    when = read_date((value or "").strip(), DATE)
    if when is None:
        raise Refusal(codigo, descripcion)
    return when


#: the simulator the sandbox world starts for this vendor
SIMULATOR = SmsclickSim
