"""One job's recipients: read from their source, checked, and turned into message rows.

A recipient that cannot be sent (bad number, bad character, too many or too long variables,
text over the vendor's limit) becomes a rejected row with its reason; the rest of the job goes
on. A source that breaks mid-way (a file with a bad line) raises ``SourceError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from dispatcher.config import AccountConfig
from dispatcher.errors import SourceError
from dispatcher.intake import bad_string, storable
from dispatcher.models import MessageState, OptOut
from dispatcher.phones import to_e164
from dispatcher.text import render
from dispatcher.vendors.base import Adapter, Recipient

#: variables one recipient may carry, and characters of one variable's value
MAX_VARS, MAX_VAR_CHARS = 50, 1000
#: characters of a stored reason
MAX_REASON_CHARS = 1000
DUPLICATE = "duplicate of an earlier recipient of this job"
#: the reason of a recipient whose phone is on the account's opt-out list (or the list for all)
OPTED_OUT = "opted_out"
PENDING, REJECTED = MessageState.PENDING.value, MessageState.REJECTED.value


@dataclass(frozen=True)
class Plan:
    """What every recipient row of one job needs, checked once for the job."""

    job_id: str
    template: str
    channel: str
    config: AccountConfig
    adapter: Adapter
    options: dict[str, Any]
    not_before: datetime | None
    deadline: datetime
    now: datetime


def message_row(plan: Plan, raw: Any, seen: set[str]) -> dict[str, Any]:
    """Read one raw recipient into a message row: pending, or rejected with its reason."""
    config = plan.config
    row: dict[str, Any] = {
        "job_id": plan.job_id,
        "batch_id": None,
        "account": config.key,
        "address": "",
        "text": None,
        "vars": None,
        "state": PENDING,
        "reason": None,
        "attempts": 0,
        "not_before": plan.not_before,
        "deadline": plan.deadline,
        "created_at": plan.now,
        "updated_at": plan.now,
    }
    field = "email" if plan.channel == "email" else "phone"
    # Keep what was given as the address even when the rest is wrong, for the operator.
    given = raw.get(field) if isinstance(raw, Mapping) else raw
    if isinstance(given, str) or (isinstance(given, int) and given.bit_length() < 128):
        row["address"] = storable(str(given)[:254])
    try:
        address, variables = _read_recipient(raw, field)
        row["vars"] = variables or None
        row["address"] = _address(address, plan.channel, config.account.country)
        if row["address"] in seen:
            raise ValueError(DUPLICATE)
        seen.add(row["address"])
        text = render(plan.template, variables)
        if not text.strip():
            raise ValueError("text is empty for this recipient")
        limit = plan.adapter.text_limit(text, plan.options)
        if len(text) > limit:
            raise ValueError(f"text is {len(text)} characters; {config.vendor} takes at most {limit}")
        why = plan.adapter.check_recipient(Recipient(0, row["address"], text, variables), plan.options)
        if why:
            raise ValueError(why)
        row["text"] = text
    except ValueError as exc:  # an InputError is one too: each gives the reason to refuse it
        reject(row, str(exc))
    return row


def reject(row: dict[str, Any], reason: str) -> dict[str, Any]:
    """Mark a row rejected with a storable reason; it joins no batch."""
    row.update(state=REJECTED, reason=storable(reason)[:MAX_REASON_CHARS], text=None, batch_id=None)
    return row


def _address(raw: Any, channel: str, country: str) -> str:
    if channel != "email":
        return to_e164(raw, country)
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 254:
        raise ValueError("email must be an address of at most 254 characters")
    return raw.strip().lower()


def _read_recipient(raw: Any, field: str = "phone") -> tuple[Any, dict[str, str]]:
    variables: Any  # the job's input as given; _read_vars checks it
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        address, variables = raw, {}
    elif not isinstance(raw, Mapping):
        raise ValueError(f"a recipient must be an object with {field!r}, not {type(raw).__name__}")
    else:
        unknown = set(raw) - {field, "vars"}
        if unknown:
            raise ValueError(f"unknown recipient field {sorted(map(str, unknown))[0][:40]!r}")
        if field not in raw:
            raise ValueError(f"recipient has no {field!r}")
        address, variables = raw[field], raw.get("vars") or {}
    if isinstance(address, str) and bad_string(address):
        raise ValueError(f"{field} holds a NUL or a lone surrogate character")
    return address, _read_vars(variables)


def _read_vars(variables: Any) -> dict[str, str]:
    if not isinstance(variables, Mapping):
        raise ValueError("'vars' must be an object of names to values")
    if len(variables) > MAX_VARS:
        raise ValueError(f"'vars' has {len(variables)} variables; at most {MAX_VARS}")
    clean: dict[str, str] = {}
    for name, value in variables.items():
        if not isinstance(name, str) or bad_string(name):
            raise ValueError("a variable's name is not text, or holds a NUL or a lone surrogate character")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"variable {name[:40]!r} must be text or a number")
        text = str(value)
        if bad_string(text):
            raise ValueError(f"variable {name[:40]!r} holds a NUL or a lone surrogate character")
        if len(text) > MAX_VAR_CHARS:
            raise ValueError(f"variable {name[:40]!r} is longer than {MAX_VAR_CHARS} characters")
        clean[name] = text
    return clean


def opted_out(conn: Any, account: str, phones: list[str]) -> set[str]:
    """Return those of the phones that opted out of this account (or of all)."""
    if not phones:
        return set()
    query = select(OptOut.phone).where(OptOut.account.in_([account, "*"]), OptOut.phone.in_(phones))
    return set(conn.execute(query).scalars())


def read_source(recipients: Iterable[Any], start: int) -> Iterator[Any]:
    """Yield the recipients after the first ``start``; a source that breaks raises SourceError."""
    count = 0
    try:
        iterator = iter(recipients)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            count += 1
            if count > start:
                yield item
    except (SourceError, OperationalError, InterfaceError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever breaks the caller's source ends the job
        detail = " ".join(str(exc).split())[:300]
        raise SourceError(f"recipient {count + 1} could not be read: {type(exc).__name__}: {detail}") from exc


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Cut an iterable into lists of ``size`` items (the last maybe shorter)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
