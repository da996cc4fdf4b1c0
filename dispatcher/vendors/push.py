"""The optional push ability: a vendor that calls our URL with replies or delivery reports.

An adapter that receives pushes provides what ``PushReceiver`` names; the webhook app
finds the ability with ``isinstance(adapter, PushReceiver)`` and reads everything it needs from
it (which methods and bodies the vendor pushes with, what a push says, what body to answer),
so no module outside ``dispatcher/vendors/`` names a vendor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from dispatcher.vendors.base import Inbound, StatusReport

#: a form body, the only body any vendor pushes with
FORM = "application/x-www-form-urlencoded"
#: the body most vendors accept as "received"
PLAIN_OK = "OK"


@runtime_checkable
class PushReceiver(Protocol):
    """A vendor that pushes replies (MO) or delivery reports to the account's URL."""

    #: HTTP methods the vendor pushes with (upper case); others are answered 405
    push_methods: frozenset[str]
    #: body content types the vendor posts (fields also come in the query string)
    push_content_types: frozenset[str]

    def parse_push(self, fields: Mapping[str, str]) -> Sequence[Inbound | StatusReport]:
        """Return what one push says; raise ValueError naming what is malformed."""
        ...

    def answer_push(self, items: Sequence[Inbound | StatusReport], keyword_reply: str | None) -> str:
        """Return the body the vendor expects back; ``keyword_reply`` is the account's text for a keyword."""
        ...
