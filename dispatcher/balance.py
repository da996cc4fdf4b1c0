"""Balance checks: a paused account (no credit, bad credentials) resumes when its check passes.

An account whose vendor declares no balance query resumes when the pause runs out and the next
send tells again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from dispatcher import account_state, metrics
from dispatcher.config import AccountConfig
from dispatcher.errors import VendorError
from dispatcher.models import AccountState
from dispatcher.redaction import scrub
from dispatcher.services import Services
from dispatcher.vendors import abilities_of
from dispatcher.vendors.base import Balance

log = logging.getLogger("dispatcher.balance")


def query_balance(ctx: Services, config: AccountConfig) -> Balance | None:
    """Ask the vendor for the account's credit; None when the vendor has no balance query."""
    query = abilities_of(config.vendor).balance
    if query is None:
        return None
    policy = config.policy
    response = ctx.transport.send(query.build(config.account), policy.connect_timeout, policy.read_timeout)
    balance = query.parse(response)
    metrics.set_balance(config.key, config.vendor, balance.credit)
    # The gauge lives in one process; the database tells any operator (dispatcher accounts).
    with ctx.engine.begin() as conn:
        account_state.record_balance(conn, config.key, balance.credit, ctx.clock.now())
    return balance


def resume_paused(ctx: Services, now: datetime) -> list[str]:
    """Check every paused account; resume those with credit; return the keys resumed."""
    with ctx.engine.connect() as conn:
        paused = conn.execute(
            select(AccountState.account, AccountState.pause_reason).where(AccountState.paused_until > now)
        ).all()
    resumed = []
    # An operator's pause (dispatcher pause) holds whatever the credit: only dispatcher resume ends it.
    for key in [row.account for row in paused if not account_state.is_operator_pause(row.pause_reason)]:
        config = ctx.accounts.get(key)
        if config is None:
            continue
        try:
            balance = query_balance(ctx, config)
        except VendorError as exc:
            reason = scrub(f"balance check failed: {exc}", config.account.secrets())
            log.warning("%s: %s", key, reason)
            _extend(ctx, config, now, reason)
            continue
        if balance is None:
            continue
        if balance.credit > 0:
            with ctx.engine.begin() as conn:
                account_state.resume(conn, key, now)
            log.info("%s: resumed, credit %s", key, balance.credit)
            resumed.append(key)
        else:
            _extend(ctx, config, now, f"no credit left (balance {balance.credit:g})")
    return resumed


def _extend(ctx: Services, config: AccountConfig, now: datetime, reason: str) -> None:
    until = now + timedelta(seconds=config.policy.pause_seconds)
    with ctx.engine.begin() as conn:
        account_state.pause(conn, config.key, until, reason, now)
