"""Every error smsdispatch raises, in one tree.

    DispatcherError
    ├── ConfigError                  bad settings or accounts file (stops start-up)
    ├── JobRejected                  a job that cannot be read; stored with its reason
    └── VendorError                  a whole vendor request failed (per-phone results are data)
        ├── RequestNotSent           defer: connect error, pool timeout; the request never left
        ├── VendorRetryable          retry: 5xx, a body that makes no sense
        │   └── VendorBusy           defer: 429, the vendor did nothing and says come back later
        ├── VendorOutcomeUnknown     unknown: read/write timeout; the vendor may have sent it
        ├── VendorRejectedRequest    rejected: the vendor refused the request for good (4xx)
        └── VendorAccountError       pause_account: bad credentials or no credit

Each class says whether a retry is safe (``retryable``) and what the request's failure means for
each of its recipients (``outcome``, a word of ``dispatcher.vendors.base.Outcome``): the sender
asks the error, never a table of types. Exceptions pickle: every ``__init__`` hands its
arguments to ``super().__init__``.
"""

from __future__ import annotations


class DispatcherError(Exception):
    """Base of every smsdispatch error."""

    #: whether doing the same thing again later is safe and may succeed
    retryable = False


class ConfigError(DispatcherError):
    """The settings or the accounts file are wrong; names the account and field."""


class JobRejected(DispatcherError):
    """A job cannot be read; its reason is stored with the rejected job."""


class VendorError(DispatcherError):
    """A whole vendor request failed."""

    #: what each recipient of the request becomes: a word of ``Outcome`` (the enum lives with the
    #: adapters, which import this module); refused for good unless a subclass knows better
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

    retryable = True
    #: nothing left us, so nothing can have been sent: waiting spends no attempt
    outcome = "defer"


class VendorRetryable(VendorError):
    """The vendor answered with a documented 'try again' (5xx) or nonsense."""

    retryable = True
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
