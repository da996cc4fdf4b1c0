"""The operator's hand on an account's opt-out list: ``dispatcher optout add|remove|list``.

Phones are read as the account reads its recipients (national numbers in the account's
country), so the list holds the same E.164 numbers ingest checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine, select

from dispatcher.config import AccountConfig
from dispatcher.errors import ConfigError
from dispatcher.inbound import opt_in, opt_out
from dispatcher.models import OptOut
from dispatcher.phones import to_e164

#: the reason stored for a phone an operator added
BY_OPERATOR = "added by an operator"


def change_opt_out(
    engine: Engine, accounts: Mapping[str, AccountConfig], action: str, account: str, phone: str, now: datetime
) -> str:
    """Add a phone to, or remove it from, an account's list; return one line saying what happened."""
    number = to_e164(phone, _config(accounts, account).account.country)
    with engine.begin() as conn:
        if action == "add":
            changed = opt_out(conn, account, [number], BY_OPERATOR, now)
            return (
                f"{number} opted out of {account}" if changed else f"{number} was already opted out of {account}"
            )
        changed = opt_in(conn, account, [number])
    return f"{number} taken off {account}'s list" if changed else f"{number} was not on {account}'s list"


def list_opt_outs(engine: Engine, accounts: Mapping[str, AccountConfig], account: str) -> list[str]:
    """The account's opt-outs, oldest first, one line each: phone, since when, why."""
    _config(accounts, account)
    query = (
        select(OptOut.phone, OptOut.created_at, OptOut.reason)
        .where(OptOut.account == account)
        .order_by(OptOut.created_at, OptOut.phone)
    )
    with engine.connect() as conn:
        return [f"{r.phone}\t{r.created_at.isoformat()}\t{r.reason or ''}" for r in conn.execute(query)]


def _config(accounts: Mapping[str, AccountConfig], account: str) -> AccountConfig:
    if account not in accounts:
        raise ConfigError(f"no account {account!r} in the accounts file; known: {', '.join(sorted(accounts))}")
    return accounts[account]
