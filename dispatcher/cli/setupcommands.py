"""The setup commands: ``migrate`` (the database), ``check-config`` (the accounts file) and
``optout`` (an account's opt-out list)."""

from __future__ import annotations

import argparse
import sys


def migrate(args: argparse.Namespace) -> int:
    """``dispatcher migrate``: create or upgrade the database tables."""
    from dispatcher.config import Settings
    from dispatcher.db import migrate as upgrade

    url = Settings().database_url
    upgrade(url)
    print(f"database ready: {_safe_url(url)}")
    return 0


def check_config(args: argparse.Namespace) -> int:
    """``dispatcher check-config``: read the accounts file, name each account, warn of a missing push secret."""
    from dispatcher.config import Settings, load_accounts

    settings = Settings()
    accounts = load_accounts(settings.accounts)
    from dispatcher.vendors import adapter_for
    from dispatcher.vendors.push import PushReceiver

    for key, config in accounts.items():
        print(f"{key}: {config.vendor} via {config.account.base_url}, window {config.policy.window.name}")
        if isinstance(adapter_for(config.vendor), PushReceiver) and not config.webhook_secret:
            print(f"warning: {key}: no webhook_secret, so no push URL; {config.vendor} pushes get 403")
    return 0


def optout(args: argparse.Namespace) -> int:
    """``dispatcher optout``: add a phone to an account's opt-out list, remove it, or list them."""
    from dispatcher.errors import BadNumber
    from dispatcher.optouts import change_opt_out, list_opt_outs
    from tasks.runtime import runtime

    rt = runtime()
    if args.action == "list":
        print("\n".join(list_opt_outs(rt.engine, rt.accounts, args.account)) or f"{args.account}: no opt-outs")
        return 0
    if not args.phone:
        print(f"dispatcher optout {args.action}: give the PHONE", file=sys.stderr)
        return 2
    try:
        print(change_opt_out(rt.engine, rt.accounts, args.action, args.account, args.phone, rt.clock.now()))
    except BadNumber as exc:
        print(f"dispatcher optout: {exc}", file=sys.stderr)
        return 2
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
