"""Personalised texts in one request: the job's ``{name}`` template in the vendor's markers.

The dispatcher renders each recipient's text at ingest and stores it. smsclouds can fill fields on
its side instead: ``message`` carries ``<+B+>``..``<+F+>`` and ``combination`` one array per
marker, one value per cellphone (the manual's "Message-Combination" table). Recipients who share a
template then go as one request rather than one request per distinct text, provided the text the
vendor renders for each number is exactly the one we stored. A recipient fits when:

- its template has 1 to 5 placeholders. Each occurrence takes its own marker, in order (B, C, D, E,
  F), so a name used twice travels twice rather than trusting a repeat the manual does not mention;
- its template rendered with its vars is its stored text (what the operator and its reports show);
- its text holds neither ``<+`` nor ``+>``: then no value, literal or seam between the two can read
  as a marker, whether the vendor fills markers in one pass or one after another;
- none of its values is empty (the manual does not say an empty field is filled, not left as written);
- its text, and the message as written with markers, are within the limit of its encoding.

Everyone else goes as before, one request per text; ``send.build_send`` chooses.
"""

from __future__ import annotations

from functools import lru_cache

from dispatcher.text import render, split
from dispatcher.vendors import base
from dispatcher.vendors.smsclouds import wire

#: the markers in the order occurrences take them, and the ``combination`` key that fills each
ORDER = [(marker, name) for marker, (_, name) in wire.MARKERS.items()]


@lru_cache(maxsize=256)
def vendor_form(template: str) -> tuple[str, tuple[str, ...]] | None:
    """The template written with the vendor's markers, and the var each marker takes; None if it cannot be."""
    literals, names = split(template)
    if not 1 <= len(names) <= len(ORDER):
        return None
    message = literals[0] + "".join(
        marker + literal for (marker, _), literal in zip(ORDER[: len(names)], literals[1:], strict=True)
    )
    return message, tuple(names)


def values(recipient: base.Recipient) -> list[str] | None:
    """This recipient's value for each marker of its template's vendor form, or None if it does not fit."""
    if recipient.template is None:
        return None
    form = vendor_form(recipient.template)
    text = recipient.text
    if form is None or "<+" in text or "+>" in text:
        return None
    try:
        filled = [str(recipient.vars[name]) for name in form[1]]
    except KeyError:
        return None
    if not all(filled) or render(recipient.template, recipient.vars) != text:
        return None
    return filled


def limit(encode: bool, large: bool) -> int:
    """Characters of ``message``, and of each number's text, with these flags."""
    return wire.ENCODED_MAX if encode else wire.LARGE_MAX if large else wire.PLAIN_MAX


def columns(rows: list[list[str]]) -> dict[str, list[str]]:
    """The ``combination`` object: per marker used, in order, one value per number (a row each)."""
    return {name: [row[i] for row in rows] for i, (_, name) in enumerate(ORDER[: len(rows[0])])}
