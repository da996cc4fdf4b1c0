"""Accepted messages, how they progress by the sandbox clock, and the callbacks they draw.

A simulator draws each message's fate when it takes it (delivered or not, answered or not) and
reads its state at a given time, so tests move the clock rather than wait.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import datetime

from dispatcher.clock import SystemClock


@dataclass(frozen=True)
class Progress:
    """How accepted messages progress, by the sandbox clock (seconds after acceptance)."""

    to_sent: float = 2.0  #: queued until then
    to_final: float = 5.0  #: sent until then, then delivered or failed
    delivered_rate: float = 0.9  #: share that ends delivered (the rest fail)
    reply_rate: float = 0.3  #: share of two-way messages that draw a reply
    stop_rate: float = 0.3  #: share of replies that are a stop word
    reply_after: float = 6.0  #: seconds after acceptance a reply arrives


STOP_WORDS = ("SALIR", "STOP", "BAJA")
REPLY_WORDS = ("SI", "Gracias", "Confirmo", "Ok")


@dataclass
class SimMessage:
    """One message a simulator accepted, with its fate drawn at acceptance."""

    vendor_id: str
    phone: str  #: E.164
    text: str
    accepted_at: datetime
    delivered: bool
    reply: str | None = None  #: the handset's answer, if it will answer
    account: str = ""


class MessageStore:
    """Accepted messages and their progress; statuses and replies are read at a given time."""

    def __init__(self, progress: Progress | None = None, seed: int = 11):
        self.progress = progress or Progress()
        self.rng = random.Random(seed)
        self.messages: dict[str, SimMessage] = {}
        self.lock = threading.Lock()

    def accept(
        self, vendor_id: str, phone: str, text: str, now: datetime, two_way: bool, account: str = ""
    ) -> SimMessage:
        """Record an accepted message and draw its fate."""
        p = self.progress
        with self.lock:
            delivered = self.rng.random() < p.delivered_rate
            reply = None
            # Only a handset that got the message can answer it.
            if two_way and delivered and self.rng.random() < p.reply_rate:
                words = STOP_WORDS if self.rng.random() < p.stop_rate else REPLY_WORDS
                reply = self.rng.choice(words)
            message = SimMessage(vendor_id, phone, text, now, delivered, reply, account)
            self.messages[vendor_id] = message
            return message

    def state(self, message: SimMessage, now: datetime) -> str:
        """'queued', 'sent', 'delivered' or 'failed' at ``now``."""
        age = (now - message.accepted_at).total_seconds()
        if age < self.progress.to_sent:
            return "queued"
        if age < self.progress.to_final:
            return "sent"
        return "delivered" if message.delivered else "failed"

    def replies(self, now: datetime, account: str | None = None) -> list[SimMessage]:
        """Messages whose reply has arrived by ``now``."""
        after = self.progress.reply_after
        with self.lock:
            return [
                m
                for m in self.messages.values()
                if m.reply and (now - m.accepted_at).total_seconds() >= after and account in (None, m.account)
            ]

    def get(self, vendor_id: str) -> SimMessage | None:
        with self.lock:
            return self.messages.get(vendor_id)


@dataclass(order=True)
class Push:
    """A callback a simulated vendor makes to a customer's URL when its time comes."""

    at: datetime
    method: str = field(compare=False)
    url: str = field(compare=False)
    params: dict[str, str] = field(default_factory=dict, compare=False)  #: query string
    form: dict[str, str] = field(default_factory=dict, compare=False)  #: form body


class PushQueue:
    """Callbacks due by the sandbox clock, sent from a background thread; answers recorded."""

    def __init__(self, clock: SystemClock):
        self.clock = clock
        self.pending: list[Push] = []
        self.sent: list[tuple[Push, int | None]] = []  #: (push, HTTP status or None if unreachable)
        self.in_flight = 0
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def schedule(self, push: Push) -> None:
        with self.lock:
            self.pending.append(push)

    def run_due(self) -> int:
        """Send every callback whose time has come; return how many."""
        import httpx

        now = self.clock.now()
        with self.lock:
            due = [p for p in self.pending if p.at <= now]
            self.pending = [p for p in self.pending if p.at > now]
            self.in_flight += len(due)
        with httpx.Client(timeout=5.0) as client:
            for push in sorted(due):
                try:
                    response = client.request(
                        push.method, push.url, params=push.params or None, data=push.form or None
                    )
                    status: int | None = response.status_code
                except httpx.HTTPError:
                    status = None
                with self.lock:
                    self.sent.append((push, status))
                    self.in_flight -= 1
        return len(due)

    def drained(self) -> bool:
        """Say whether every push due by now has been answered."""
        now = self.clock.now()
        with self.lock:
            return self.in_flight == 0 and not any(p.at <= now for p in self.pending)

    def start(self, interval: float = 0.2) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                self.run_due()

        self._thread = threading.Thread(target=loop, name="sandbox-push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
