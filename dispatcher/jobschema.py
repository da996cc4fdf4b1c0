"""The job schema: a job's header, its inline form, their bounds, and a one-line reading of what
is wrong with one.

A job's header is everything but its recipients; the queue and ``submit_job`` take the inline form,
``dispatcher submit`` streams a CSV's recipients beside a header. Values are checked for what any
database can store (``dispatcher.intake``) before the schema reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from dispatcher.intake import storable, value_problem

#: characters a job's text template may have
MAX_TEMPLATE_CHARS = 4096
#: recipients one job message may carry inline (larger lists go through ``dispatcher submit``)
MAX_INLINE_RECIPIENTS = 200_000


class JobHeader(BaseModel):
    """Everything of a job but its recipients."""

    model_config = ConfigDict(extra="forbid")

    account: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    send_at: AwareDatetime | None = None
    #: past this, messages not yet sent end ``expired`` (else each one's created + max_age)
    expires_at: AwareDatetime | None = None
    priority: Literal["bulk", "otp"] = "bulk"
    #: sms everywhere; email and voice where the account's vendor offers them
    channel: Literal["sms", "email", "voice"] = "sms"
    options: dict[str, Any] = Field(default_factory=dict)


class InlineJob(JobHeader):
    """A job with its recipients inline, as the queue and ``submit_job`` take it."""

    recipients: list[Any] = Field(min_length=1, max_length=MAX_INLINE_RECIPIENTS)


def header_problem(raw: Mapping[Any, Any]) -> str | None:
    """The first problem with a header value (a character no database holds, too deep, too much); None if none."""
    for name, value in raw.items():
        if name != "recipients":
            problem = value_problem(value, storable(str(name))[:40])
            if problem:
                return problem
    return None


def describe(exc: ValidationError) -> str:
    """Say what is wrong with a job in one line, without echoing its (maybe huge) values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(part)[:40] for part in error["loc"]) or "job"
        problems.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - len(problems)
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
