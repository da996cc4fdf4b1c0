"""What smsclouds pushes to our URL: replies (MO), and keyword messages that want an auto-reply.

Both are GETs with the fields in the query string (``response``, ``cellphone``, ``date``, and
``message_id`` or ``keyword`` with ``operador``). An MO is answered ``ok``; a keyword push is
answered with the auto-reply text itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatcher.vendors import base

#: the body our MO push endpoint must answer (the keyword endpoint answers the reply text instead)
PUSH_ACK = "ok"
#: the MO and keyword pushes are GETs with the fields in the query string
push_methods = frozenset({"GET"})
push_content_types: frozenset[str] = frozenset()


def parse_push(params: Mapping[str, str]) -> list[base.Inbound]:
    """Read the MO push (message_id) or the keyword auto-reply push (keyword, operador)."""
    fields = {name.lower(): value for name, value in params.items()}
    kind = "keyword" if "keyword" in fields else "message_id"
    missing = [name for name in ("response", "cellphone", kind, "date") if not fields.get(name)]
    if missing:
        raise ValueError(f"smsclouds push without {missing[0]!r}")
    return [
        base.Inbound(
            fields["cellphone"],
            fields["response"],
            vendor_id=fields.get("message_id"),
            at=fields["date"],
            keyword=fields.get("keyword"),
        )
    ]


def answer_push(items: Sequence[base.Inbound | base.StatusReport], keyword_reply: str | None) -> str:
    """``ok`` for an MO; for a keyword the auto-reply text itself (empty: no auto-reply)."""
    if any(isinstance(item, base.Inbound) and item.keyword for item in items):
        # The manual: the client server "should respond a simple print for your automatic text".
        return keyword_reply or ""
    return PUSH_ACK
