"""Settings from the environment, and the accounts file (TOML; secrets from the environment).

    [accounts.co-main]
    vendor = "<vendor>"        # a key of dispatcher.vendors; its adapter names the credentials:
    user = "ops@example.com"
    token = "${CO_MAIN_TOKEN}"  # a secret, always from the environment
    window = "co-crc"          # optional; Colombian accounts default to co-crc
    webhook_secret = "${CO_MAIN_HOOK_SECRET}"  # optional: its push URL is /hooks/co-main/<secret>
    stop_words = ["STOP", "SALIR"]            # optional; DEFAULT_STOP_WORDS below
    allow_resubscribe = true                  # optional: a start word takes a phone off the list

    [accounts.mx-main.keyword_replies]         # optional, where the vendor pushes keywords:
    PROMO = "Gracias {cellphone}"              # the auto-reply text, filled with the push's fields

    [windows.mx-office]        # optional: windows of your own
    timezone = "America/Mexico_City"
    days = ["mon", "tue", "wed", "thu", "fri"]
    start = "09:00"
    end = "18:00"
    holidays = "MX"

Any error stops start-up with a ``ConfigError`` naming the account (or window) and the field.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispatcher.errors import ConfigError
from dispatcher.vendors import VENDOR_KEYS, VENDORS, abilities_of
from dispatcher.vendors.base import Account
from dispatcher.windows import BUILT_IN, DEFAULT_FOR_COUNTRY, Window, parse_window


class Settings(BaseSettings):
    """Process settings, read from the environment."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", extra="ignore")

    database_url: str = Field(
        "sqlite:///smsdispatch.db", validation_alias=AliasChoices("DATABASE_URL", "DISPATCHER_DATABASE_URL")
    )
    redis_url: str = Field(
        "redis://localhost:6379/0", validation_alias=AliasChoices("REDIS_URL", "DISPATCHER_REDIS_URL")
    )
    accounts: str = Field("accounts.toml", validation_alias=AliasChoices("DISPATCHER_ACCOUNTS"))
    #: a file holding a clock offset in seconds (demos and tests move time with it)
    clock_file: str | None = None
    #: seconds between two release sweeps of beat
    sweep_seconds: float = 5.0
    #: seconds between two polls of delivery reports and replies
    poll_seconds: float = 30.0
    #: seconds between two balance checks of paused accounts
    balance_seconds: float = 60.0
    #: port the worker serves Prometheus metrics on (/metrics); 0 serves none
    metrics_port: int = 9808
    #: seconds after which a queued batch whose task never ran is queued again
    requeue_after: float = 300.0
    #: seconds after which a message still 'sending' is declared 'unknown'
    sending_timeout: float = 600.0
    #: batches of one account queued at once; the rest wait in the database
    max_queued_batches: int = 4
    #: seconds a countdown may last before the wait moves to the database (beat releases it)
    max_countdown: float = 60.0
    #: Redis visibility timeout in seconds; must exceed every countdown and time limit
    visibility_timeout: float = 3600.0
    #: seconds a task runs before Celery raises SoftTimeLimitExceeded in it (killed 60 s later)
    soft_time_limit: float = 240.0
    #: seconds a send task starts vendor requests for; then a follow-up task takes the rest.
    #: Below the soft limit minus the longest request (connect + read timeout, 35 s by default)
    send_budget: float = 180.0
    #: seconds PostgreSQL lets one statement of a worker run before it stops it (0: no limit);
    #: below the soft limit, so the server ends a runaway query before its task gives up on it
    statement_timeout: float = 120.0
    #: log lines as plain text, or one JSON object per line (worker and command line)
    log_format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class AccountPolicy:
    """How the dispatcher treats one account: window, retries, timeouts."""

    window: Window
    #: tries of one message before it fails
    max_attempts: int = 6
    #: seconds of the first retry wait; doubles each attempt, with jitter
    retry_base: float = 5.0
    #: longest retry wait in seconds
    retry_max: float = 600.0
    #: seconds after a message's creation when retrying stops
    max_age: float = 86400.0
    #: seconds a paused account (no credit, bad credentials) waits before trying again
    pause_seconds: float = 600.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    #: requests of this account in the air at once, across every worker process, where the vendor
    #: takes one number a request (above 1, such a batch's requests go out concurrently; 1 sends
    #: them one after another). Neither such vendor's manual states a cap, so concurrency is the
    #: account's choice: 1 until the fault suite runs green with it on (see the README)
    max_in_flight: int = 1
    #: seconds between two status polls of this account
    status_poll_seconds: float = 60.0
    #: seconds between two reply polls of this account
    reply_poll_seconds: float = 60.0
    #: seconds after sending during which a message's status can still change (then it is not asked)
    status_horizon: float = 259200.0


#: replies that opt a phone out unless the account lists its own (compared trimmed, upper case)
DEFAULT_STOP_WORDS = ("STOP", "SALIR", "BAJA", "CANCELAR", "ALTO", "EXIT", "REMOVE")
#: replies that take a phone off the list again, where the account allows it
DEFAULT_START_WORDS = ("START", "ALTA")
#: characters a webhook secret needs at least: the URL is all that stands between a stranger
#: and the account's replies and opt-outs
MIN_WEBHOOK_SECRET = 16


@dataclass(frozen=True)
class ReplyRules:
    """What an account's replies do: stop and start words, keyword auto-replies."""

    stop_words: frozenset[str] = frozenset(DEFAULT_STOP_WORDS)
    start_words: frozenset[str] = frozenset(DEFAULT_START_WORDS)
    #: whether a start word takes a phone off the account's opt-out list
    allow_resubscribe: bool = False
    #: upper-case keyword -> auto-reply template ({field} of the push, as the vendor names it)
    keyword_replies: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class AccountConfig:
    """An account: credentials for the adapter, policy for the sender."""

    account: Account
    policy: AccountPolicy
    replies: ReplyRules = ReplyRules()

    @property
    def webhook_secret(self) -> str | None:
        """The secret of the account's push URL, or None: then it has no push URL."""
        return self.account.params.get("webhook_secret") or None

    @property
    def key(self) -> str:
        return self.account.key

    @property
    def vendor(self) -> str:
        return self.account.vendor


_POLICY_FIELDS = {
    "max_attempts": int,
    "retry_base": float,
    "retry_max": float,
    "max_age": float,
    "pause_seconds": float,
    "connect_timeout": float,
    "read_timeout": float,
    "max_in_flight": int,
    "status_poll_seconds": float,
    "reply_poll_seconds": float,
    "status_horizon": float,
}
_GENERAL_FIELDS = {"vendor", "base_url", "country", "window"}
_REPLY_FIELDS = {"stop_words", "start_words", "allow_resubscribe", "keyword_replies"}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_accounts(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> dict[str, AccountConfig]:
    """Read and check the accounts file; raise ConfigError naming the account and field."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"accounts file {str(file)!r} not found (set DISPATCHER_ACCOUNTS)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"accounts file {str(file)!r} is not valid TOML: {exc}") from None
    return parse_accounts(data, os.environ if env is None else env)


def parse_accounts(data: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, AccountConfig]:
    """Check an accounts document already read from TOML."""
    windows = dict(BUILT_IN)
    for name, spec in (data.get("windows") or {}).items():
        try:
            windows[name] = parse_window(name, spec)
        except ValueError as exc:
            raise ConfigError(f"window {name!r}: {exc}") from None
    accounts = data.get("accounts") or {}
    if not isinstance(accounts, Mapping):
        raise ConfigError("'accounts' must be a table of tables")
    return {key: _parse_account(key, spec, windows, env) for key, spec in accounts.items()}


def _parse_account(
    key: str, spec: Mapping[str, Any], windows: Mapping[str, Window], env: Mapping[str, str]
) -> AccountConfig:
    def fail(field: str, problem: str) -> ConfigError:
        return ConfigError(f"account {key!r}, field {field!r}: {problem}")

    vendor = spec.get("vendor")
    if vendor not in VENDOR_KEYS:
        raise fail("vendor", f"unknown vendor {vendor!r}; one of {', '.join(VENDOR_KEYS)}")
    if vendor not in VENDORS:
        raise fail("vendor", f"vendor {vendor!r} has no adapter in this version")
    abilities = abilities_of(vendor)
    required, secret = abilities.credentials.required, abilities.credentials.secret
    params: dict[str, str] = {}
    for field, value in spec.items():
        if field in _GENERAL_FIELDS or field in _POLICY_FIELDS or field in _REPLY_FIELDS:
            continue
        if isinstance(value, str):
            params[field] = _expand(value, env, lambda problem, f=field: fail(f, problem))
        elif isinstance(value, (int, float, bool)):
            params[field] = str(value)
        else:
            raise fail(field, "must be a string or a number")
    for field in required:
        if not params.get(field):
            raise fail(field, "missing")
    country = str(spec.get("country", abilities.default_country)).upper()
    window_name = spec.get("window", DEFAULT_FOR_COUNTRY.get(country, "always"))
    if window_name not in windows:
        raise fail("window", f"unknown window {window_name!r}; known: {', '.join(sorted(windows))}")
    policy_args: dict[str, Any] = {}
    for field, kind in _POLICY_FIELDS.items():
        if field in spec:
            try:
                policy_args[field] = kind(spec[field])
            except (TypeError, ValueError):
                raise fail(field, f"must be a number, not {spec[field]!r}") from None
            if policy_args[field] <= 0:
                raise fail(field, "must be above 0")
    adapter = VENDORS[vendor]
    account = Account(
        key=key,
        vendor=vendor,
        base_url=str(spec.get("base_url", adapter.default_base_url)),
        country=country,
        params=params,
        secret_fields=frozenset(field for field in (*secret, "webhook_secret") if field in params),
    )
    rules = _reply_rules(spec, params, fail)
    return AccountConfig(account, AccountPolicy(window=windows[window_name], **policy_args), rules)


def _reply_rules(
    spec: Mapping[str, Any], params: Mapping[str, str], fail: Callable[[str, str], ConfigError]
) -> ReplyRules:
    """Read the account's webhook secret, stop and start words and keyword auto-replies."""
    if "webhook_secret" in params and len(params["webhook_secret"]) < MIN_WEBHOOK_SECRET:
        raise fail("webhook_secret", f"needs at least {MIN_WEBHOOK_SECRET} characters")
    words: dict[str, frozenset[str]] = {}
    for name, default in (("stop_words", DEFAULT_STOP_WORDS), ("start_words", DEFAULT_START_WORDS)):
        value = spec.get(name, list(default))
        if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
            raise fail(name, "must be a list of words")
        words[name] = frozenset(w.strip().upper() for w in value)
    if words["stop_words"] & words["start_words"]:
        raise fail("start_words", f"{sorted(words['stop_words'] & words['start_words'])[0]!r} is also a stop word")
    allow = spec.get("allow_resubscribe", False)
    if not isinstance(allow, bool):
        raise fail("allow_resubscribe", "must be true or false")
    table = spec.get("keyword_replies", {})
    if not isinstance(table, Mapping) or not all(isinstance(t, str) and t.strip() for t in table.values()):
        raise fail("keyword_replies", 'must be a table of keyword = "reply text"')
    keyword_replies = {str(k).strip().upper(): t for k, t in table.items()}
    return ReplyRules(words["stop_words"], words["start_words"], allow, keyword_replies)


def _expand(value: str, env: Mapping[str, str], fail: Callable[..., ConfigError]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if not env.get(name):
            raise fail(f"environment variable {name} is not set")
        return env[name]

    return _ENV_REF.sub(substitute, value)
