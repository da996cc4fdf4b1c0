"""What Ogangi pushes: delivery reports (TYPE=SMS) and replies (TYPE=MO_MESSAGE), POSTed as a form
to the account's callback URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatcher.vendors import base
from dispatcher.vendors.ogangi import wire
from dispatcher.vendors.push import FORM, PLAIN_OK

#: reports and replies are POSTed as a form to the account's callback URL
push_methods = frozenset({"POST"})
push_content_types = frozenset({FORM})


def parse_push(form: Mapping[str, str]) -> list[base.StatusReport | base.Inbound]:
    """One callback POST: a report (TYPE=SMS) or a reply (TYPE=MO_MESSAGE); other types carry none."""
    fields = {name.upper(): str(value) for name, value in form.items()}
    kind = fields.get("TYPE", "").strip().upper()
    if not kind:
        raise ValueError("ogangi callback without TYPE")
    if kind == "MO_MESSAGE":
        if "TEXT" not in fields:  # present, though a handset may send an empty text
            raise ValueError("ogangi callback without TEXT")
        return [base.Inbound(wire.e164(_field(fields, "FROM")), fields["TEXT"], to=fields.get("TO") or None)]
    if kind != "SMS":
        return []  # PUSH, EMAIL, FACEBOOK, geofences: not SMS
    word = _field(fields, "STATUS").upper()
    if word not in wire.status_codes:
        raise ValueError(f"ogangi callback with undocumented STATUS {word!r}")
    phone = wire.e164(fields["TO"]) if fields.get("TO") else None
    return [base.StatusReport(_field(fields, "MESSANGI_ID"), wire.status_codes[word], code=word, phone=phone)]


def answer_push(items: Sequence[base.Inbound | base.StatusReport], keyword_reply: str | None) -> str:
    """The manual asks for no particular answer: a plain OK."""
    return PLAIN_OK


def _field(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise ValueError(f"ogangi callback without {name}")
    return value
