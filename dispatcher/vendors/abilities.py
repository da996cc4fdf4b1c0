"""What a vendor can do beyond sending, declared as data by its adapter.

Each adapter declares ``ABILITIES = Abilities(...)``: its credentials, default country, job channels,
and the queries it answers (statuses, replies, balance), each typed and optional. Polling, config
and balance read them through ``dispatcher.vendors.abilities_of`` and never name a vendor; a
vendor without a query simply leaves it ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from dispatcher.vendors.base import Account, Balance, DeliveryState, Inbound, StatusReport

#: turns one answer into delivery reports
ParseStatus = Callable[[httpx.Response], list[StatusReport]]
#: turns one answer into replies
ParseReplies = Callable[[httpx.Response], list[Inbound]]


@dataclass(frozen=True)
class Credentials:
    """Fields an account of this vendor must give, and which of them are secret."""

    required: tuple[str, ...]
    secret: tuple[str, ...] = ()


@dataclass(frozen=True)
class ByIds:
    """Statuses asked for by the vendor ids we stored, ``chunk`` ids per request."""

    chunk: int
    build: Callable[[Account, Sequence[str]], list[httpx.Request]]
    parse: ParseStatus


@dataclass(frozen=True)
class ByDateRange:
    """Statuses or replies of everything sent (or received) between two times.

    ``build`` gets the window's ends as aware datetimes and writes them in the vendor's zone.
    """

    build: Callable[[Account, datetime, datetime], httpx.Request]
    parse: Callable[[httpx.Response], list[Any]]


@dataclass(frozen=True)
class Paged:
    """Statuses or replies read page by page (0, 1, ...) until a page comes back empty."""

    build: Callable[[Account, int], httpx.Request]
    parse: Callable[[httpx.Response], list[Any]]
    #: pages read per poll at most; the cursor resumes where a poll stopped
    max_pages: int = 20
    #: True where the vendor also pushes what these pages hold, unless the account asks to poll
    #: (``poll_replies = true``): a push and a poll of one item could not be told apart
    pushed: bool = False
    #: page 0 holds the newest items (new ones push the rest onto later pages)
    newest_first: bool = False


StatusQuery = ByIds | ByDateRange | Paged
ReplyQuery = ByDateRange | Paged


@dataclass(frozen=True)
class BalanceQuery:
    """The account's credit: one request, one answer."""

    build: Callable[[Account], httpx.Request]
    parse: Callable[[httpx.Response], Balance]


@dataclass(frozen=True)
class Abilities:
    """Everything a vendor declares beyond sending."""

    credentials: Credentials
    #: ISO country of an account's national numbers, unless the account says otherwise
    default_country: str
    #: job channels the vendor carries (a job names one; SMS unless the vendor offers more)
    channels: tuple[str, ...] = ("sms",)
    status_query: StatusQuery | None = None
    #: ids the date-range or paged status query missed, asked one by one (never more than a few)
    stragglers: ByIds | None = None
    reply_query: ReplyQuery | None = None
    balance: BalanceQuery | None = None
    #: delivery states after which the vendor never says more of a message: it stops being asked
    final: frozenset[DeliveryState] = frozenset({DeliveryState.DELIVERED, DeliveryState.FAILED})
    #: a final report stops the asking only once the message was sent this long ago: where the
    #: vendor's best news is "sent", a failure may still follow it for a while
    settles_after: timedelta = timedelta(0)
