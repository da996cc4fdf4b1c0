"""Ogangi Mobile Engagement Campaign Manager (Messangi), VE / US: the manual is seeds/004.

The adapter, by concern: ``send`` (one signed GET per recipient: sendSMS, sendMT, or a PIN Ogangi
makes), ``queries`` (replies read page by page, and injecting one), ``pushes`` (reports and
replies POSTed to the account's callback URL), ``signing`` (how every call is signed) and
``wire`` (status words, codes, and the XML envelope every reply comes in).
"""

from __future__ import annotations

from dispatcher.vendors.abilities import Abilities, Credentials, Paged
from dispatcher.vendors.ogangi.pushes import answer_push, parse_push, push_content_types, push_methods
from dispatcher.vendors.ogangi.queries import build_fire, build_replies, parse_fire, parse_replies, search_string
from dispatcher.vendors.ogangi.send import (
    build_pin,
    build_send,
    check_recipient,
    parse_pin,
    parse_send,
    text_limit,
    validate_options,
)
from dispatcher.vendors.ogangi.signing import sign
from dispatcher.vendors.ogangi.wire import codes, key, limits, status_codes

# The seed writes {base_url}; this is the vendor wiki's. Each customer may have its own host.
default_base_url = "https://www.messangi.com/messangi_mmc"


ABILITIES = Abilities(
    credentials=Credentials(
        required=("instance_id", "public_key", "private_key", "from"), secret=("private_key",)
    ),
    default_country="VE",
    # Replies come without a date or id, so one both pushed and polled could not be told apart:
    # only accounts that get no pushes (poll_replies = true) poll them.
    reply_query=Paged(build_replies, parse_replies, pushed=True),
)

__all__ = [
    "ABILITIES",
    "answer_push",
    "build_fire",
    "build_pin",
    "build_replies",
    "build_send",
    "check_recipient",
    "codes",
    "default_base_url",
    "key",
    "limits",
    "parse_fire",
    "parse_pin",
    "parse_push",
    "parse_replies",
    "parse_send",
    "push_content_types",
    "push_methods",
    "search_string",
    "sign",
    "status_codes",
    "text_limit",
    "validate_options",
]
