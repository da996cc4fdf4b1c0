"""What came in at the job door: characters, nesting, sizes and dates checked before any write.

A job arrives from producers we do not control (a Celery message, a Python call, a file). Every
string in it must be storable (PostgreSQL text holds no NUL; UTF-8 holds no lone surrogate),
every nested value shallow and small enough to store and to hand on, and every date near enough
to compute with. Each check answers with a one-line reason, never an exception. A rejected job
keeps ``excerpt``: a redacted, cut JSON view of what arrived, for the operator.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

#: a character no database column can hold: NUL, or half of a UTF-16 surrogate pair
BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
#: levels of nesting a job's options may have ({"a": {"b": 1}} is 2)
MAX_DEPTH = 4
#: values (strings, numbers, items) the job's fields other than recipients may hold in all
MAX_ITEMS = 1000
#: characters of one string in the job's fields other than recipients (the text has its own bound)
MAX_STRING_CHARS = 4096
#: how far ``send_at`` and ``expires_at`` may lie from now, either way
MAX_AHEAD = timedelta(days=366)
#: characters of the excerpt a rejected job keeps
PAYLOAD_CHARS = 2048
#: characters of one string, and items of one list or object, shown in the excerpt
_EXCERPT_STRING, _EXCERPT_ITEMS = 120, 5
#: names whose values are never stored, at any level of the excerpt
SECRET_NAME = re.compile(r"token|passw|secret|api_?key|private|auth|^key$|_key$", re.IGNORECASE)
#: job fields whose names look secret but are not
_NOT_SECRET = frozenset({"idempotency_key"})


def storable(text: str) -> str:
    """Return ``text`` with every character no column can hold replaced by U+FFFD."""
    return BAD_CHARACTER.sub("\ufffd", text)


def bad_string(text: str) -> bool:
    """Say whether a string holds a character no column can hold."""
    return BAD_CHARACTER.search(text) is not None


def value_problem(value: Any, where: str, max_depth: int = MAX_DEPTH) -> str | None:
    """Say in one line what makes a JSON-like value unstorable, or None.

    Walks without recursion, so a value nested ten thousand deep is refused, not a crash.
    """
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    items = 1
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if bad_string(item):
                return f"{path}: holds a NUL or a lone surrogate character"
            if depth and len(item) > MAX_STRING_CHARS:  # top-level fields have their own bounds
                return f"{path}: longer than {MAX_STRING_CHARS} characters"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{path}: {item} is not a number JSON can hold"
        elif isinstance(item, Mapping | list | tuple):
            if depth >= max_depth:
                return f"{path}: nested deeper than {max_depth} levels"
            items += len(item)
            if items > MAX_ITEMS:
                return f"{where}: more than {MAX_ITEMS} values"
            pairs = item.items() if isinstance(item, Mapping) else enumerate(item)
            for key, child in pairs:
                if isinstance(item, Mapping) and (not isinstance(key, str) or bad_string(key)):
                    return f"{path}: a name is not text, or holds a NUL or a lone surrogate character"
                stack.append((child, f"{path}.{str(key)[:40]}", depth + 1))
        elif item is not None and not isinstance(item, bool | int | float):
            return f"{path}: a {type(item).__name__} is not a JSON value"
    return None


def date_problem(name: str, when: datetime | None, now: datetime) -> str | None:
    """Say why a job's date is out of range (more than MAX_AHEAD from now), or None."""
    if when is None:
        return None
    try:
        off = when - now
    except OverflowError:
        off = MAX_AHEAD * 2
    if abs(off) > MAX_AHEAD:
        return f"{name}: must lie within {MAX_AHEAD.days} days of now, not {when.isoformat()[:40]}"
    return None


def excerpt(raw: Any, limit: int = PAYLOAD_CHARS) -> str:
    """Return a redacted JSON excerpt of what came in, at most ``limit`` characters."""
    text = json.dumps(_trim(raw, 0), ensure_ascii=False, default=lambda o: _trim(repr(o), 0))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _trim(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        value = storable(value)
        return value if len(value) <= _EXCERPT_STRING else value[:_EXCERPT_STRING] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= MAX_DEPTH + 2:
        return "…"
    if isinstance(value, Mapping):
        shown = {}
        for key, child in islice(value.items(), _EXCERPT_ITEMS * 4):
            name = storable(str(key))[:_EXCERPT_STRING]
            secret = SECRET_NAME.search(name) and name not in _NOT_SECRET
            shown[name] = "***" if secret else _trim(child, depth + 1)
        return shown
    if isinstance(value, list | tuple):
        shown_items = [_trim(child, depth + 1) for child in value[:_EXCERPT_ITEMS]]
        more = len(value) - _EXCERPT_ITEMS
        return shown_items + ([f"… {more} more"] if more > 0 else [])
    return _trim(repr(value), depth)
