"""What IT Cloud pushes: replies (manual, section 3), as GET ``?mensaje=...&celular=...``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatcher.vendors import base
from dispatcher.vendors.push import FORM, PLAIN_OK

#: replies come as GET ``?mensaje=...&celular=...``; a POST form is read alike
push_methods = frozenset({"GET", "POST"})

push_content_types = frozenset({FORM})


def parse_push(params: Mapping[str, str]) -> list[base.Inbound]:
    """A reply pushed to our URL (manual, section 3): GET ``mensaje`` and ``celular``."""
    text, number = params.get("mensaje"), (params.get("celular") or "").strip()
    if text is None or not number.isdigit():
        raise ValueError("an itcloud reply needs 'mensaje' and the digits of 'celular'")
    # celular carries the country prefix, as GSM does; 01 + 10 digits is a NANP number.
    phone = "+" + (number[1:] if number.startswith("01") and len(number) == 12 else number)
    return [base.Inbound(phone, text)]


def answer_push(items: Sequence[base.Inbound | base.StatusReport], keyword_reply: str | None) -> str:
    """The manual asks for no particular answer: a plain OK."""
    return PLAIN_OK
