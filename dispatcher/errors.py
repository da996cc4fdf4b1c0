"""Every error smsdispatch raises, in one tree; each class carries what it means.

    DispatcherError
    ├── ConfigError                  pause_account: bad settings or accounts file; stops start-up
    ├── InputError                   rejected: a job's input cannot be used (also a ValueError)
    │   ├── BadNumber                rejected: a phone that cannot be sent to
    │   ├── TemplateError            rejected: a {name} the recipient's vars lack
    │   └── SourceError              rejected: the recipients' source broke mid-job; the job stops
    └── VendorError                  rejected: a whole request failed (per-phone results are data)
        ├── RequestNotSent           defer: connect error, pool timeout; the request never left
        ├── VendorRetryable          retry: 5xx, a body that makes no sense
        │   └── VendorBusy           defer: 429, the vendor did nothing and says come back later
        ├── VendorOutcomeUnknown     unknown: read/write timeout; the vendor may have sent it
        ├── VendorRejectedRequest    rejected: the vendor refused the request for good (4xx)
        └── VendorAccountError       pause_account: bad credentials or no credit

Each class below the root says what its failure means for each recipient it touches
(``outcome``, a word of ``dispatcher.vendors.base.Outcome``): the sender asks the error, never a
table of types. A later try is safe exactly when the word is ``retry`` or ``defer``. Exceptions
pickle: every ``__init__`` hands its arguments to ``super().__init__``.
"""

from __future__ import annotations

from typing import ClassVar


class DispatcherError(Exception):
    """Base of every smsdispatch error."""

    #: what each recipient the failure touches becomes: a word of ``Outcome`` (the enum lives
    #: with the adapters, which import this module); every class below this one has one
    outcome: ClassVar[str]


class ConfigError(DispatcherError):
    """The settings or the accounts file are wrong; names the account and field."""

    #: nothing of the account can go until its settings are fixed; no message is failed for it
    outcome = "pause_account"


class InputError(DispatcherError, ValueError):
    """A job's input cannot be used; the message says why, and is stored as the reason.

    Also a ``ValueError``, so a check that refuses any bad value refuses these the same way.
    """

    #: the recipient (or the whole job) is refused for good and stored with the reason
    outcome = "rejected"


class BadNumber(InputError):
    """A phone that cannot be sent to; the message says why."""


class TemplateError(InputError):
    """A template refers to a variable a recipient did not give."""


class SourceError(InputError):
    """The recipients' source (a file, a stream) broke mid-job; the job stops with this reason."""


class VendorError(DispatcherError):
    """A whole vendor request failed."""

    #: refused for good unless a subclass knows better
    outcome = "rejected"

    def __init__(self, reason: str, code: str | None = None, retry_after: float | None = None):
        super().__init__(reason, code, retry_after)
        self.reason = reason
        self.code = code
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.reason


class RequestNotSent(VendorError):
    """The request never reached the vendor (connect error, pool timeout)."""

    #: nothing left us, so nothing can have been sent: waiting spends no attempt
    outcome = "defer"


class VendorRetryable(VendorError):
    """The vendor answered with a documented 'try again' (5xx) or nonsense."""

    outcome = "retry"


class VendorBusy(VendorRetryable):
    """The vendor did nothing and says when to come back (HTTP 429, Retry-After)."""

    #: a refusal before any work: waiting spends no attempt
    outcome = "defer"


class VendorOutcomeUnknown(VendorError):
    """The request left but no reply came back: the vendor may or may not have sent it."""

    outcome = "unknown"


class VendorRejectedRequest(VendorError):
    """The vendor refused the whole request for good."""


class VendorAccountError(VendorError):
    """Bad credentials or no credit: the account pauses, nothing is failed."""

    outcome = "pause_account"
