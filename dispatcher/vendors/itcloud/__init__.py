"""IT Cloud Services (contacto-masivo), Colombia: the manual is seeds/001 (Spanish).

The adapter, by concern: ``send`` (``/api/sendsms``, many numbers a request), ``queries`` (the
balance), ``pushes`` (replies pushed to our URL) and ``wire`` (codes, limits, numbers).
"""

from __future__ import annotations

from dispatcher.vendors.abilities import Abilities, BalanceQuery, Credentials
from dispatcher.vendors.itcloud.pushes import answer_push, parse_push, push_content_types, push_methods
from dispatcher.vendors.itcloud.queries import build_balance, parse_balance
from dispatcher.vendors.itcloud.send import build_send, check_recipient, parse_send, text_limit, validate_options
from dispatcher.vendors.itcloud.wire import codes, key, limits, vendor_number

default_base_url = "https://contacto-masivo.com/sms/back_sms/public"

ABILITIES = Abilities(
    credentials=Credentials(required=("user", "token"), secret=("token", "password")),
    default_country="CO",
    balance=BalanceQuery(build_balance, parse_balance),
)

__all__ = [
    "ABILITIES",
    "answer_push",
    "build_balance",
    "build_send",
    "check_recipient",
    "codes",
    "default_base_url",
    "key",
    "limits",
    "parse_balance",
    "parse_push",
    "parse_send",
    "push_content_types",
    "push_methods",
    "text_limit",
    "validate_options",
    "vendor_number",
]
