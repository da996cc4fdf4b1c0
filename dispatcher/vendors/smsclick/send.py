"""Sending through SMSClick: ``sendMsg.json`` with ``TELEFONO`` (10 national digits), ``MENSAJE`` and
the optional ``ID_REGLA_INTERACTIVA`` (the job's interactive rule), one number per request::

    {"codigo":1, "descripcion":"Mensaje enviado", "id_mensaje":123, "creditosUsados":1}
    {"codigo": -104, "descripcion":"Saldo insuficiente"}

The field table spells the credits ``creditos_usados`` and the example ``creditosUsados``: both are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from dispatcher.vendors import base
from dispatcher.vendors.smsclick import wire


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
    return wire.limits.max_text_chars


def check_recipient(recipient: base.Recipient, options: Mapping[str, Any]) -> str | None:
    """Say why a recipient cannot go through SMSClick (Mexican numbers only), or None."""
    if wire.vendor_number(recipient.address) is None:
        return "smsclick sends to Mexican numbers (+52 and 10 digits) only"
    return None


def build_send(account: base.Account, outgoing: base.Outgoing) -> list[base.SendRequest]:
    """One form POST per recipient: ``sendMsg.json`` takes a single TELEFONO."""
    sends = []
    for r in outgoing.recipients:
        number = wire.vendor_number(r.address)
        if number is None:
            # Its digits could be someone's Mexican number; the sender checks first.
            raise ValueError(check_recipient(r, outgoing.options))
        form = {"APIKEY": account.params["apikey"], "TELEFONO": number, "MENSAJE": r.text}
        if outgoing.options.get("ID_REGLA_INTERACTIVA") is not None:
            form["ID_REGLA_INTERACTIVA"] = str(outgoing.options["ID_REGLA_INTERACTIVA"])
        sends.append(base.SendRequest(wire.post(account, "sendMsg.json", form), [r]))
    return sends


def parse_send(account: base.Account, sent: base.SendRequest, response: httpx.Response) -> list[base.Result]:
    """Read ``codigo``: 1 is accepted under ``id_mensaje``, other codes go through ``codes``."""
    base.raise_for_status(response)
    recipient = sent.recipients[0]
    body, code = wire.reply(response)
    if code != "1":
        return [base.result_for_code(recipient, code, wire.codes, wire.key)]
    vendor_id = body.get("id_mensaje")
    if isinstance(vendor_id, bool) or not wire.CODE.fullmatch(str(vendor_id)):
        # codigo 1 says it was sent: sending again would send it twice.
        reason = "smsclick said sent but gave no id_mensaje"
        return [base.Result(recipient.message_id, base.Outcome.UNKNOWN, code=code, reason=reason)]
    credits = body.get("creditosUsados", body.get("creditos_usados"))
    reason = f"smsclick credits used: {credits}" if credits is not None else ""
    return [
        base.Result(
            recipient.message_id, base.Outcome.ACCEPTED, vendor_id=str(vendor_id), code=code, reason=reason
        )
    ]
