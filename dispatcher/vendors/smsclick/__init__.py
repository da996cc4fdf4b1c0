"""SMSClick, Mexico: the manual is seeds/002 (Spanish).

The adapter, by concern: ``send`` (``sendMsg.json``, one number per request), ``queries``
(``getMsg.json``, ``report.json``, ``credits.json``) and ``wire`` (codes, numbers, dates, replies).

A number outside Mexico is never sent: its digits could be someone else's Mexican number.
``check_recipient`` refuses it before any request.
"""

from __future__ import annotations

from dispatcher.vendors.abilities import Abilities, BalanceQuery, ByDateRange, ByIds, Credentials
from dispatcher.vendors.smsclick.queries import (
    build_balance,
    build_replies,
    build_report,
    build_status,
    build_status_requests,
    parse_balance,
    parse_replies,
    parse_status,
    report_window,
)
from dispatcher.vendors.smsclick.send import build_send, check_recipient, parse_send, text_limit, validate_options
from dispatcher.vendors.smsclick.wire import codes, key, limits, status_codes, vendor_number

default_base_url = "https://app.smsclick.com.mx"

ABILITIES = Abilities(
    credentials=Credentials(required=("apikey",), secret=("apikey",)),
    default_country="MX",
    status_query=ByDateRange(report_window, parse_status),
    # getMsg takes one id a request: only for what the report window left out.
    stragglers=ByIds(chunk=1, build=build_status_requests, parse=parse_status),
    reply_query=ByDateRange(report_window, parse_replies),
    balance=BalanceQuery(build_balance, parse_balance),
)

__all__ = [
    "ABILITIES",
    "build_balance",
    "build_replies",
    "build_report",
    "build_send",
    "build_status",
    "build_status_requests",
    "check_recipient",
    "codes",
    "default_base_url",
    "key",
    "limits",
    "parse_balance",
    "parse_replies",
    "parse_send",
    "parse_status",
    "status_codes",
    "text_limit",
    "validate_options",
    "vendor_number",
]
