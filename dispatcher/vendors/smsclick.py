"""SMSClick, Mexico: the manual is seeds/002 (Spanish).

Every call is a form POST under ``/sms-services/`` carrying ``APIKEY``. Sending is ``sendMsg.json``
with ``TELEFONO`` (10 national digits), ``MENSAJE`` and optional ``ID_REGLA_INTERACTIVA`` (the job's
interactive rule), one number per request. Sample replies::

    {"codigo":1, "descripcion":"Mensaje enviado", "id_mensaje":123, "creditosUsados":1}
    {"codigo": -104, "descripcion":"Saldo insuficiente"}

``codigo`` 1 is success everywhere; the other codes are in ``codes``. The field table spells the
credits ``creditos_usados`` and the example ``creditosUsados``: both are read.

Queries: ``getMsg.json`` (one ``ID_MENSAJE`` per request; its reply does not repeat the id, so it is
read back from the request), ``report.json`` (a date range, ``DD-MM-AAAA HH:mm:ss``) and
``credits.json``. Replies (MO) exist only for interactive messages, as ``respuesta`` (getMsg) or
``respuesta_cliente`` (report). Phones in answers become E.164 (+52) and dates ``YYYY-MM-DD HH:MM:SS``.

A number outside Mexico is never sent: its digits could be someone else's Mexican number. It is
carried by the read-only ``credits.json`` instead, and ``parse_send`` rejects it with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx

from dispatcher.errors import VendorAccountError, VendorError, VendorRejectedRequest, VendorRetryable
from dispatcher.vendors.abilities import Abilities, BalanceQuery, ByDateRange, ByIds, Credentials
from dispatcher.vendors.base import (
    Account,
    Balance,
    CodeRule,
    DeliveryState,
    Inbound,
    Limits,
    Outcome,
    Outgoing,
    Recipient,
    Result,
    SendRequest,
    StatusReport,
    raise_for_status,
    result_for_code,
    short_body,
)

key = "smsclick"
default_base_url = "https://app.smsclick.com.mx"

# One table for every endpoint: send results become outcomes; a query answered with a code other
# than 1 raises the error of its outcome (_ERROR_OF).
codes: dict[str, CodeRule] = {
    "1": CodeRule(Outcome.ACCEPTED, "message sent (queries: answered)"),
    "-100": CodeRule(Outcome.PAUSE_ACCOUNT, "APIKEY parameter not defined"),
    "-101": CodeRule(Outcome.PAUSE_ACCOUNT, "APIKEY incorrect"),
    "-102": CodeRule(Outcome.REJECTED, "TELEFONO not valid: not 10 digits"),
    "-103": CodeRule(Outcome.REJECTED, "MENSAJE empty"),
    "-104": CodeRule(Outcome.PAUSE_ACCOUNT, "insufficient balance"),
    "-105": CodeRule(Outcome.REJECTED, "ID_REGLA_INTERACTIVA does not exist"),
    "-200": CodeRule(Outcome.REJECTED, "getMsg: ID_MENSAJE not valid"),
    "-201": CodeRule(Outcome.REJECTED, "getMsg: ID_MENSAJE does not exist"),
    "-300": CodeRule(Outcome.REJECTED, "report: FECHA_INICIO empty or badly written"),
    "-301": CodeRule(Outcome.REJECTED, "report: FECHA_FIN empty or badly written"),
    "-302": CodeRule(Outcome.REJECTED, "report: ESTATUS_MENSAJE badly written"),
    "-303": CodeRule(Outcome.REJECTED, "report: ID_CAMPANIA badly written"),
}

#: ``estatus_mensaje`` -> delivery state
status_codes: dict[str, DeliveryState] = {
    "0": DeliveryState.QUEUED,  # pendiente de envío
    "1": DeliveryState.QUEUED,  # en proceso de envío
    "2": DeliveryState.SENT,  # enviado
    "3": DeliveryState.DELIVERED,  # recibido
    "4": DeliveryState.FAILED,  # rechazado
}

# One TELEFONO per request and no documented pause. No text maximum is documented either; every
# 150 characters cost one more credit, so 450 (three credits) bounds what one message may cost.
limits = Limits(batch_size=1, hard_max_recipients=1, min_interval=0.0, max_text_chars=450)

_ERROR_OF: dict[Outcome, type[VendorError]] = {
    Outcome.PAUSE_ACCOUNT: VendorAccountError,
    Outcome.REJECTED: VendorRejectedRequest,
}
_CODE = re.compile(r"-?[0-9]+")
_VENDOR_DATE = "%d-%m-%Y %H:%M:%S"


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``ID_REGLA_INTERACTIVA`` (a whole number or a non-blank identifier) and nothing else."""
    unknown = set(options) - {"ID_REGLA_INTERACTIVA"}
    if unknown:
        raise ValueError(f"smsclick takes no option {sorted(unknown)[0]!r}")
    rule = options.get("ID_REGLA_INTERACTIVA")
    if rule is None:
        return {}
    if isinstance(rule, bool) or not isinstance(rule, (int, str)) or not str(rule).strip():
        raise ValueError(f"ID_REGLA_INTERACTIVA must be a rule identifier, not {rule!r}")
    return {"ID_REGLA_INTERACTIVA": str(rule).strip()}


def text_limit(text: str, options: Mapping[str, Any]) -> int:
    """SMSClick takes up to 450 characters whatever the alphabet (our cap; none is documented)."""
    return limits.max_text_chars


def vendor_number(phone: str) -> str | None:
    """E.164 to SMSClick's 10 national digits, or None for a number outside Mexico."""
    digits = phone[3:]
    return digits if phone.startswith("+52") and len(digits) == 10 and digits.isdigit() else None


def check_recipient(recipient: Recipient, options: Mapping[str, Any]) -> str | None:
    """Say why a recipient cannot go through SMSClick (Mexican numbers only), or None."""
    if vendor_number(recipient.phone) is None:
        return "smsclick sends to Mexican numbers (+52 and 10 digits) only"
    return None


def build_send(account: Account, outgoing: Outgoing) -> list[SendRequest]:
    """One form POST per recipient: ``sendMsg.json`` takes a single TELEFONO."""
    sends = []
    for r in outgoing.recipients:
        number = vendor_number(r.phone)
        if number is None:
            # Its digits could be someone's Mexican number; the sender checks first.
            raise ValueError(check_recipient(r, outgoing.options))
        form = {"APIKEY": account.params["apikey"], "TELEFONO": number, "MENSAJE": r.text}
        if outgoing.options.get("ID_REGLA_INTERACTIVA") is not None:
            form["ID_REGLA_INTERACTIVA"] = str(outgoing.options["ID_REGLA_INTERACTIVA"])
        sends.append(SendRequest(_post(account, "sendMsg.json", form), [r]))
    return sends


def parse_send(account: Account, sent: SendRequest, response: httpx.Response) -> list[Result]:
    """Read ``codigo``: 1 is accepted under ``id_mensaje``, other codes go through ``codes``."""
    raise_for_status(response)
    recipient = sent.recipients[0]
    body, code = _reply(response)
    if code != "1":
        return [result_for_code(recipient, code, codes, key)]
    vendor_id = body.get("id_mensaje")
    if isinstance(vendor_id, bool) or not _CODE.fullmatch(str(vendor_id)):
        # codigo 1 says it was sent: sending again would send it twice.
        reason = "smsclick said sent but gave no id_mensaje"
        return [Result(recipient.message_id, Outcome.UNKNOWN, code=code, reason=reason)]
    credits = body.get("creditosUsados", body.get("creditos_usados"))
    reason = f"smsclick credits used: {credits}" if credits is not None else ""
    return [Result(recipient.message_id, Outcome.ACCEPTED, vendor_id=str(vendor_id), code=code, reason=reason)]


def build_status(account: Account, vendor_ids: Sequence[str]) -> httpx.Request:
    """POST ``getMsg.json`` for exactly one id (the endpoint takes one; see build_status_requests)."""
    if len(vendor_ids) != 1:
        raise ValueError("getMsg.json takes one ID_MENSAJE per request: use build_status_requests")
    return _post(account, "getMsg.json", {"APIKEY": account.params["apikey"], "ID_MENSAJE": str(vendor_ids[0])})


def build_status_requests(account: Account, vendor_ids: Iterable[str]) -> list[httpx.Request]:
    """One ``getMsg.json`` request per id."""
    return [build_status(account, [vendor_id]) for vendor_id in vendor_ids]


def build_report(
    account: Account,
    start: datetime | str,
    end: datetime | str,
    statuses: Iterable[int] = (),
    campaign_id: str | int | None = None,
) -> httpx.Request:
    """POST ``report.json``: the messages sent between two dates, optionally by status and campaign."""
    form = {
        "APIKEY": account.params["apikey"],
        "FECHA_INICIO": _vendor_date("FECHA_INICIO", start),
        "FECHA_FIN": _vendor_date("FECHA_FIN", end),
    }
    wanted = [str(s) for s in statuses]
    if any(s not in status_codes for s in wanted):
        raise ValueError(f"ESTATUS_MENSAJE values are 0 to 4, not {','.join(wanted)}")
    if wanted:
        form["ESTATUS_MENSAJE"] = ",".join(wanted)
    if campaign_id is not None:
        form["ID_CAMPANIA"] = str(campaign_id)
    return _post(account, "report.json", form)


def build_replies(account: Account, start: datetime | str, end: datetime | str) -> httpx.Request:
    """Replies come inside ``report.json``: ask for the messages of a date range."""
    return build_report(account, start, end)


def parse_status(response: httpx.Response) -> list[StatusReport]:
    """One report per message of a ``getMsg.json`` or ``report.json`` answer."""
    reports = []
    for item in _messages(response):
        code = None if item.get("estatus_mensaje") is None else str(item["estatus_mensaje"])
        state = status_codes.get(code or "", DeliveryState.QUEUED)  # undocumented: not final, kept raw
        phone, at = _phone(item.get("telefono")), _iso(item.get("fecha_envio"))
        reports.append(StatusReport(str(item["id_mensaje"]), state, code=code, phone=phone, at=at))
    return reports


def parse_replies(response: httpx.Response) -> list[Inbound]:
    """The handset's replies (``respuesta`` / ``respuesta_cliente``) in a getMsg or report answer."""
    inbound = []
    for item in _messages(response):
        text = item.get("respuesta_cliente", item.get("respuesta"))
        if text is None or str(text).strip() in ("", "NULL"):
            continue  # the manual: "NULL" unless the message was interactive
        phone, at = _phone(item.get("telefono")) or "", _iso(item.get("fecha_respuesta"))
        inbound.append(Inbound(phone, str(text), vendor_id=str(item["id_mensaje"]), at=at))
    return inbound


def build_balance(account: Account) -> httpx.Request:
    """POST ``credits.json``: the credits left."""
    return _post(account, "credits.json", {"APIKEY": account.params["apikey"]})


def parse_balance(response: httpx.Response) -> Balance:
    """Read ``creditos``."""
    raise_for_status(response)
    body, code = _reply(response)
    if code != "1":
        raise _query_error(code)
    credits = body.get("creditos")
    if isinstance(credits, bool) or not isinstance(credits, (int, float)):
        raise VendorRetryable(f"smsclick answered no creditos: {short_body(response)}")
    return Balance(float(credits))


def _reply(response: httpx.Response) -> tuple[dict[str, Any], str]:
    """The JSON object and its ``codigo``; anything else is a reply that makes no sense."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("codigo") if isinstance(body, dict) else None
    digits = _CODE.fullmatch(str(code))
    if not isinstance(body, dict) or isinstance(code, bool) or digits is None:
        raise VendorRetryable(f"smsclick answered no codigo: {short_body(response)}")
    return body, str(int(digits.group()))


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The message records of a getMsg (one, id read from the request) or report answer."""
    raise_for_status(response)
    body, code = _reply(response)
    if code != "1":
        raise _query_error(code)
    if "mensajes" in body:
        items = body["mensajes"]
        if isinstance(items, list) and all(isinstance(i, dict) and "id_mensaje" in i for i in items):
            return items
    elif "estatus_mensaje" in body:
        return [{**body, "id_mensaje": _asked_id(response)}]
    raise VendorRetryable(f"smsclick answered no message records: {short_body(response)}")


def _asked_id(response: httpx.Response) -> str:
    try:
        asked = dict(parse_qsl(response.request.read().decode())).get("ID_MENSAJE")
    except RuntimeError:
        asked = None  # a response built by hand has no request
    if asked is None:
        raise ValueError("a getMsg answer is read with the getMsg request that asked for it")
    return asked


def _query_error(code: str) -> VendorError:
    rule = codes.get(code)
    if rule is None:
        return VendorRetryable(f"smsclick answered undocumented code {code!r}", code)
    return _ERROR_OF.get(rule.outcome, VendorRetryable)(f"smsclick {code}: {rule.meaning}", code)


def _phone(value: Any) -> str | None:
    if value is None:
        return None
    digits = str(value)
    return "+52" + digits if len(digits) == 10 and digits.isdigit() else digits


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), _VENDOR_DATE).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def _vendor_date(name: str, value: datetime | str) -> str:
    if isinstance(value, datetime):
        return value.strftime(_VENDOR_DATE)
    try:
        datetime.strptime(value, _VENDOR_DATE)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be written DD-MM-AAAA HH:mm:ss, not {value!r}") from None
    return value


def _post(account: Account, endpoint: str, form: Mapping[str, str]) -> httpx.Request:
    url = f"{account.base_url.rstrip('/')}/sms-services/{endpoint}"
    return httpx.Request("POST", url, data=dict(form))


# Dates in queries are the vendor's wall time (Mexico City).
_ZONE = ZoneInfo("America/Mexico_City")


def _report_window(account: Account, start: datetime, end: datetime) -> httpx.Request:
    return build_report(account, start.astimezone(_ZONE), end.astimezone(_ZONE))


ABILITIES = Abilities(
    credentials=Credentials(required=("apikey",), secret=("apikey",)),
    default_country="MX",
    status_query=ByDateRange(_report_window, parse_status),
    # getMsg takes one id a request: only for what the report window left out.
    stragglers=ByIds(chunk=1, build=build_status_requests, parse=parse_status),
    reply_query=ByDateRange(_report_window, parse_replies),
    balance=BalanceQuery(build_balance, parse_balance),
)
