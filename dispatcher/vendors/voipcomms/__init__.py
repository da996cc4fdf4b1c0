"""VoIP Communications api-v2 (US and international): the manual is seeds/003 (English).

The adapter, by concern: ``send`` (``sms/send``: the manual), ``queries`` (``sms/summary`` and
``sms/chat``, paged), ``pushes`` (replies to a 2-way number) and ``wire`` (codes, status words,
numbers, credentials). The manual stops at sending; the vendor's own public app shows the rest:
a refusal's ``{"error": true, "error_message": ...}`` and the paged queries.
"""

from __future__ import annotations

from dispatcher.vendors.abilities import Abilities, Credentials, Paged
from dispatcher.vendors.voipcomms.pushes import answer_push, parse_push, push_content_types, push_methods
from dispatcher.vendors.voipcomms.queries import build_replies, build_status, parse_replies, parse_status
from dispatcher.vendors.voipcomms.send import build_send, check_recipient, parse_send, text_limit, validate_options
from dispatcher.vendors.voipcomms.wire import codes, key, limits, status_codes, vendor_number

default_base_url = "https://voip-communications.net"

ABILITIES = Abilities(
    credentials=Credentials(required=("api_key", "api_password"), secret=("api_password",)),
    default_country="US",
    status_query=Paged(build_status, parse_status, newest_first=True),
    # Replies are pushed to the number's callback URL; an account may poll sms/chat instead.
    reply_query=Paged(build_replies, parse_replies, pushed=True, newest_first=True),
)

__all__ = [
    "ABILITIES",
    "answer_push",
    "build_replies",
    "build_send",
    "build_status",
    "check_recipient",
    "codes",
    "default_base_url",
    "key",
    "limits",
    "parse_push",
    "parse_replies",
    "parse_send",
    "parse_status",
    "push_content_types",
    "push_methods",
    "status_codes",
    "text_limit",
    "validate_options",
    "vendor_number",
]
