"""What VoIP Communications pushes: a reply to a 2-way number, POSTed as a form to its callback URL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatcher.vendors import base
from dispatcher.vendors.push import FORM, PLAIN_OK

#: replies to a 2-way number are POSTed as a form to its callback URL
push_methods = frozenset({"POST"})

push_content_types = frozenset({FORM})


def parse_push(form: Mapping[str, str]) -> list[base.Inbound]:
    """A reply to a 2-way number, POSTed to its callback URL (the manual names no fields; these
    are the send form's own: ``from`` the handset, ``to`` our number, ``msg``, and ``date``)."""
    sender, text = (form.get("from") or "").strip().lstrip("+"), form.get("msg")
    if not sender.isdigit() or text is None:
        raise ValueError("a voipcomms reply needs 'from' digits and 'msg'")
    return [base.Inbound("+" + sender, text, to=form.get("to") or None, at=form.get("date") or None)]


def answer_push(items: Sequence[base.Inbound | base.StatusReport], keyword_reply: str | None) -> str:
    """The manual asks for no particular answer: a plain OK."""
    return PLAIN_OK
