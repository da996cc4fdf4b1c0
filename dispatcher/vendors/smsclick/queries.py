"""What SMSClick answers about sent messages and the account.

``getMsg.json`` takes one ``ID_MENSAJE`` per request and its reply does not repeat the id, so it is
read back from the request; ``report.json`` lists what was sent in a date range
(``DD-MM-AAAA HH:mm:ss``); ``credits.json`` gives the credits left. Replies (MO) exist only for
interactive messages, as ``respuesta`` (getMsg) or ``respuesta_cliente`` (report).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.vendors import base
from dispatcher.vendors.smsclick import wire

# Dates in queries are the vendor's wall time (Mexico City).
_ZONE = ZoneInfo("America/Mexico_City")


def build_status(account: base.Account, vendor_ids: Sequence[str]) -> httpx.Request:
    """POST ``getMsg.json`` for exactly one id (the endpoint takes one; see build_status_requests)."""
    if len(vendor_ids) != 1:
        raise ValueError("getMsg.json takes one ID_MENSAJE per request: use build_status_requests")
    return wire.post(
        account, "getMsg.json", {"APIKEY": account.params["apikey"], "ID_MENSAJE": str(vendor_ids[0])}
    )


def build_status_requests(account: base.Account, vendor_ids: Iterable[str]) -> list[httpx.Request]:
    """One ``getMsg.json`` request per id."""
    return [build_status(account, [vendor_id]) for vendor_id in vendor_ids]


def build_report(
    account: base.Account,
    start: datetime | str,
    end: datetime | str,
    statuses: Iterable[int] = (),
    campaign_id: str | int | None = None,
) -> httpx.Request:
    """POST ``report.json``: the messages sent between two dates, optionally by status and campaign."""
    form = {
        "APIKEY": account.params["apikey"],
        "FECHA_INICIO": wire.vendor_date("FECHA_INICIO", start),
        "FECHA_FIN": wire.vendor_date("FECHA_FIN", end),
    }
    wanted = [str(s) for s in statuses]
    if any(s not in wire.status_codes for s in wanted):
        raise ValueError(f"ESTATUS_MENSAJE values are 0 to 4, not {','.join(wanted)}")
    if wanted:
        form["ESTATUS_MENSAJE"] = ",".join(wanted)
    if campaign_id is not None:
        form["ID_CAMPANIA"] = str(campaign_id)
    return wire.post(account, "report.json", form)


def build_replies(account: base.Account, start: datetime | str, end: datetime | str) -> httpx.Request:
    """Replies come inside ``report.json``: ask for the messages of a date range."""
    return build_report(account, start, end)


def parse_status(response: httpx.Response) -> list[base.StatusReport]:
    """One report per message of a ``getMsg.json`` or ``report.json`` answer."""
    reports = []
    for item in _messages(response):
        code = None if item.get("estatus_mensaje") is None else str(item["estatus_mensaje"])
        state = wire.status_codes.get(code or "", base.DeliveryState.QUEUED)  # undocumented: not final, kept raw
        phone, at = wire.e164(item.get("telefono")), wire.iso_date(item.get("fecha_envio"))
        reports.append(base.StatusReport(str(item["id_mensaje"]), state, code=code, phone=phone, at=at))
    return reports


def parse_replies(response: httpx.Response) -> list[base.Inbound]:
    """The handset's replies (``respuesta`` / ``respuesta_cliente``) in a getMsg or report answer."""
    inbound = []
    for item in _messages(response):
        text = item.get("respuesta_cliente", item.get("respuesta"))
        if text is None or str(text).strip() in ("", "NULL"):
            continue  # the manual: "NULL" unless the message was interactive
        phone, at = wire.e164(item.get("telefono")) or "", wire.iso_date(item.get("fecha_respuesta"))
        inbound.append(base.Inbound(phone, str(text), vendor_id=str(item["id_mensaje"]), at=at))
    return inbound


def build_balance(account: base.Account) -> httpx.Request:
    """POST ``credits.json``: the credits left."""
    return wire.post(account, "credits.json", {"APIKEY": account.params["apikey"]})


def parse_balance(response: httpx.Response) -> base.Balance:
    """Read ``creditos``."""
    base.raise_for_status(response)
    body, code = wire.reply(response)
    if code != "1":
        raise wire.query_error(code)
    credits = body.get("creditos")
    if isinstance(credits, bool) or not isinstance(credits, (int, float)):
        raise VendorRetryable(f"smsclick answered no creditos: {base.short_body(response)}")
    return base.Balance(float(credits))


def _messages(response: httpx.Response) -> list[dict[str, Any]]:
    """The message records of a getMsg (one, id read from the request) or report answer."""
    base.raise_for_status(response)
    body, code = wire.reply(response)
    if code != "1":
        raise wire.query_error(code)
    if "mensajes" in body:
        items = body["mensajes"]
        if isinstance(items, list) and all(isinstance(i, dict) and "id_mensaje" in i for i in items):
            return items
    elif "estatus_mensaje" in body:
        return [{**body, "id_mensaje": _asked_id(response)}]
    raise VendorRetryable(f"smsclick answered no message records: {base.short_body(response)}")


def _asked_id(response: httpx.Response) -> str:
    try:
        asked = dict(parse_qsl(response.request.read().decode())).get("ID_MENSAJE")
    except RuntimeError:
        asked = None  # a response built by hand has no request
    if asked is None:
        raise ValueError("a getMsg answer is read with the getMsg request that asked for it")
    return asked


def report_window(account: base.Account, start: datetime, end: datetime) -> httpx.Request:
    """``report.json`` for two aware times, written in the vendor's zone."""
    return build_report(account, start.astimezone(_ZONE), end.astimezone(_ZONE))
