"""SMSClick on the wire: its code table, Mexican numbers, dates, and the ``codigo`` every reply carries.

Every call is a form POST under ``/sms-services/`` carrying ``APIKEY``; every reply is a JSON object
whose ``codigo`` 1 is success everywhere (the other codes are in ``codes``). Phones in answers
become E.164 (+52) and dates ``YYYY-MM-DD HH:MM:SS``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx

from dispatcher.errors import VendorAccountError, VendorError, VendorRejectedRequest, VendorRetryable
from dispatcher.vendors import base

key = "smsclick"

# One table for every endpoint: send results become outcomes; a query answered with a code other
# than 1 raises the error of its outcome (_ERROR_OF).
codes: dict[str, base.CodeRule] = {
    "1": base.CodeRule(base.Outcome.ACCEPTED, "message sent (queries: answered)"),
    "-100": base.CodeRule(base.Outcome.PAUSE_ACCOUNT, "APIKEY parameter not defined"),
    "-101": base.CodeRule(base.Outcome.PAUSE_ACCOUNT, "APIKEY incorrect"),
    "-102": base.CodeRule(base.Outcome.REJECTED, "TELEFONO not valid: not 10 digits"),
    "-103": base.CodeRule(base.Outcome.REJECTED, "MENSAJE empty"),
    "-104": base.CodeRule(base.Outcome.PAUSE_ACCOUNT, "insufficient balance"),
    "-105": base.CodeRule(base.Outcome.REJECTED, "ID_REGLA_INTERACTIVA does not exist"),
    "-200": base.CodeRule(base.Outcome.REJECTED, "getMsg: ID_MENSAJE not valid"),
    "-201": base.CodeRule(base.Outcome.REJECTED, "getMsg: ID_MENSAJE does not exist"),
    "-300": base.CodeRule(base.Outcome.REJECTED, "report: FECHA_INICIO empty or badly written"),
    "-301": base.CodeRule(base.Outcome.REJECTED, "report: FECHA_FIN empty or badly written"),
    "-302": base.CodeRule(base.Outcome.REJECTED, "report: ESTATUS_MENSAJE badly written"),
    "-303": base.CodeRule(base.Outcome.REJECTED, "report: ID_CAMPANIA badly written"),
}

#: ``estatus_mensaje`` -> delivery state
status_codes: dict[str, base.DeliveryState] = {
    "0": base.DeliveryState.QUEUED,  # pendiente de envío
    "1": base.DeliveryState.QUEUED,  # en proceso de envío
    "2": base.DeliveryState.SENT,  # enviado
    "3": base.DeliveryState.DELIVERED,  # recibido
    "4": base.DeliveryState.FAILED,  # rechazado
}

# One TELEFONO per request and no documented pause. No text maximum is documented either; every
# 150 characters cost one more credit, so 450 (three credits) bounds what one message may cost.
limits = base.Limits(batch_size=1, hard_max_recipients=1, min_interval=0.0, max_text_chars=450)

_ERROR_OF: dict[base.Outcome, type[VendorError]] = {
    base.Outcome.PAUSE_ACCOUNT: VendorAccountError,
    base.Outcome.REJECTED: VendorRejectedRequest,
}

#: a ``codigo`` or an id: digits, maybe negative
CODE = re.compile(r"-?[0-9]+")
_VENDOR_DATE = "%d-%m-%Y %H:%M:%S"


def vendor_number(phone: str) -> str | None:
    """E.164 to SMSClick's 10 national digits, or None for a number outside Mexico."""
    digits = phone[3:]
    return digits if phone.startswith("+52") and len(digits) == 10 and digits.isdigit() else None


def reply(response: httpx.Response) -> tuple[dict[str, Any], str]:
    """The JSON object and its ``codigo``; anything else is a reply that makes no sense."""
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("codigo") if isinstance(body, dict) else None
    digits = CODE.fullmatch(str(code))
    if not isinstance(body, dict) or isinstance(code, bool) or digits is None:
        raise VendorRetryable(f"smsclick answered no codigo: {base.short_body(response)}")
    return body, str(int(digits.group()))


def query_error(code: str) -> VendorError:
    """The error a query answered with this code raises: its outcome decides which."""
    rule = codes.get(code)
    if rule is None:
        return VendorRetryable(f"smsclick answered undocumented code {code!r}", code)
    return _ERROR_OF.get(rule.outcome, VendorRetryable)(f"smsclick {code}: {rule.meaning}", code)


def e164(value: Any) -> str | None:
    """A phone of an answer as E.164 when it is 10 national digits, else as given."""
    if value is None:
        return None
    digits = str(value)
    return "+52" + digits if len(digits) == 10 and digits.isdigit() else digits


def iso_date(value: Any) -> str | None:
    """A date of an answer written ``YYYY-MM-DD HH:MM:SS`` when it reads as the vendor's, else as given."""
    if value is None:
        return None
    try:
        return datetime.strptime(str(value), _VENDOR_DATE).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(value)


def vendor_date(name: str, value: datetime | str) -> str:
    """A date as the queries take it (``DD-MM-AAAA HH:mm:ss``), or ValueError naming the field."""
    if isinstance(value, datetime):
        return value.strftime(_VENDOR_DATE)
    try:
        datetime.strptime(value, _VENDOR_DATE)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be written DD-MM-AAAA HH:mm:ss, not {value!r}") from None
    return value


def post(account: base.Account, endpoint: str, form: Mapping[str, str]) -> httpx.Request:
    """A form POST to an endpoint under ``/sms-services/``."""
    url = f"{account.base_url.rstrip('/')}/sms-services/{endpoint}"
    return httpx.Request("POST", url, data=dict(form))
