"""Message texts: ``{name}`` templates and GSM-7 / UCS-2 segment counting."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dispatcher.errors import TemplateError

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = "^{}\\[~]|€\f"
_GSM7 = frozenset(GSM7_BASIC + GSM7_EXTENDED)


def placeholders(template: str) -> set[str]:
    """Return the variable names a template uses."""
    return set(_PLACEHOLDER.findall(template))


def split(template: str) -> tuple[list[str], list[str]]:
    """Cut a template into its literal parts and the names between them, one per occurrence.

    There is one literal more than names: ``render`` writes literal 0, value of name 0, literal 1...
    """
    parts = _PLACEHOLDER.split(template)
    return parts[0::2], parts[1::2]


def render(template: str, variables: Mapping[str, object]) -> str:
    """Fill ``{name}`` placeholders; only plain names, no attribute or index access."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise TemplateError(f"variable {name!r} missing for this recipient")
        return str(variables[name])

    return _PLACEHOLDER.sub(fill, template)


def is_gsm7(text: str) -> bool:
    """Say whether the text fits the GSM-7 alphabet (else it goes as UCS-2)."""
    return all(ch in _GSM7 for ch in text)


def segments(text: str) -> int:
    """Count the SMS parts the text takes (160/153 GSM-7, 70/67 UCS-2)."""
    if is_gsm7(text):
        units = len(text) + sum(ch in GSM7_EXTENDED for ch in text)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)
