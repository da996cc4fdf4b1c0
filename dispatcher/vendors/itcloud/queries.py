"""IT Cloud's one query: the account's balance (manual, section 2), on another host than sending."""

from __future__ import annotations

import httpx

from dispatcher.errors import VendorAccountError, VendorRetryable
from dispatcher.vendors import base

#: the balance query lives on another host (manual, section 2); accounts may set ``balance_url``
default_balance_url = "https://sistemasmasivos.com/itcloud/api/sendsms/query.php"


def build_balance(account: base.Account) -> httpx.Request:
    """GET ``query.php`` with ``user`` and ``token`` (and ``password`` when the account has one)."""
    params = {"user": account.params["user"], "token": account.params["token"]}
    if account.params.get("password"):
        # The manual's table names the token, its example a password: send what we have.
        params["password"] = account.params["password"]
    return httpx.Request("GET", account.params.get("balance_url", default_balance_url), params=params)


def parse_balance(response: httpx.Response) -> base.Balance:
    """A number is the balance; ``-1`` is a failed authentication."""
    base.raise_for_status(response)
    body = response.text.strip()
    try:
        value = float(body)
    except ValueError:
        raise VendorRetryable(
            f"itcloud answered a balance that is not a number: {base.short_body(response)}"
        ) from None
    if body == "-1":
        raise VendorAccountError("itcloud -1: authentication failed: bad user or token", "-1")
    return base.Balance(value)
