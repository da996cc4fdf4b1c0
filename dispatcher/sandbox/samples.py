"""What a simulator declares for the sandbox world: its one customer, the account that reaches it,
and the sample job that customer takes whole.

The world (``world.py``) starts a simulator for every vendor in the registry and reads these
declarations, so a new vendor's sandbox account and sample job live in its simulator alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SampleJob:
    """A job a sandbox customer takes whole: phones of its country, a text, its vendor's options."""

    prefix: str  #: country code and area every phone starts with
    text: str  #: a template; every recipient brings ``shop``
    count: int  #: recipients of the demo's job
    options: Mapping[str, str] = field(default_factory=dict)
    length: int = 13  #: characters of a whole E.164 number of the country, "+" included

    def job(self, account: str, count: int | None = None, first: int = 0) -> dict[str, Any]:
        """The job for ``account``: ``count`` recipients (the sample's by default), numbered from ``first``."""
        width = self.length - len(self.prefix)
        numbers = range(first, first + (self.count if count is None else count))
        # Numbers past the country's width wrap around: a long-running producer stays valid.
        recipients = [
            {"phone": f"{self.prefix}{n % 10**width:0{width}d}", "vars": {"shop": "Tienda Sol"}} for n in numbers
        ]
        return {"account": account, "text": self.text, "recipients": recipients, "options": dict(self.options)}


@dataclass(frozen=True)
class SandboxCustomer:
    """A simulator's customer in the sandbox world, and the dispatcher's account of it."""

    account: str  #: the dispatcher's account key
    key: str  #: who the vendor knows the customer as (``add_customer``'s key)
    secret: str  #: the sandbox value of what proves it
    #: the environment variable that hands ``secret`` to the dispatcher (the accounts file names it)
    secret_env: str
    #: the account's fields beside vendor and base URL; the secret as ``${secret_env}``
    fields: Mapping[str, str]
    sample: SampleJob
    credit: Any = None  #: the simulator's default when None
    #: whether the vendor pushes to the dispatcher's webhook app (its callback URL is set)
    pushes: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)  #: the vendor's own customer fields
