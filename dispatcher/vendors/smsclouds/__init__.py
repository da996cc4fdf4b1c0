"""Api Smsclouds V1 (Max4Systems / masmensajes), Mexico and routes: the manual is seeds/000 (English).

The adapter, by concern: ``send`` (SMS, POST /api/v1/message) with ``combination`` (a job's template
filled in by the vendor), ``channels`` (email and voice as job channels) over ``campaigns`` (the
email and voice API), ``queries`` (statuses, replies, credit), ``pushes`` (what the vendor pushes to
us) and ``wire`` (code tables, routes, request and reply shapes). Errors are HTTP
400/401/404/422/500 with ``{"error": {"information": ..., "status_code": 422}}``.

Texts. The dispatcher renders ``{name}`` templates before we see them, so recipients with the same
final text and route share one request. Where the job's template fits the vendor's fields (up to
five placeholders, values that cannot read as markers, each number's text from the vendor identical
to ours), recipients who share it share one ``combination`` request instead. A job that wants the
vendor to personalise instead writes the vendor's markers in its text: ``<+B+>`` takes the
recipient's var ``name``, ``<+C+>``..``<+F+>`` take ``field1``..``field4``; they travel as
``combination`` arrays, one value per cellphone. The manual's 1-160 limit is on the ``message``
parameter, so markers count as written. ``encode`` is set when the text or a var it uses has a
character outside ASCII GSM-7 (the manual: accents need it), and then the limit is 70; plain text
over 160 goes with ``large_message`` (306). The only option is ``encode: true``, which forces UCS-2
on plain text.

A recipient we cannot send (no route for its country, a marker whose var it lacks or that a value
brought in, vars that need ``encode`` with a text over 70) is refused by ``check_recipient`` before
any request: the national digits of a number without a route could reach someone else in another
country.
"""

from __future__ import annotations

from datetime import timedelta

from dispatcher.vendors import base
from dispatcher.vendors.abilities import Abilities, BalanceQuery, ByDateRange, ByIds, Credentials
from dispatcher.vendors.smsclouds.campaigns import build_email, build_voice, parse_email, parse_voice
from dispatcher.vendors.smsclouds.channels import CHANNELS
from dispatcher.vendors.smsclouds.pushes import PUSH_ACK, answer_push, parse_push, push_content_types, push_methods
from dispatcher.vendors.smsclouds.queries import (
    build_balance,
    build_replies,
    build_status,
    parse_balance,
    parse_replies,
    parse_status,
    replies_between,
    status_requests,
)
from dispatcher.vendors.smsclouds.send import build_send, check_recipient, parse_send, text_limit, validate_options
from dispatcher.vendors.smsclouds.wire import codes, key, limits, status_codes, vendor_number

default_base_url = "https://smsclouds.cloud"

ABILITIES = Abilities(
    credentials=Credentials(required=("token",), secret=("token",)),
    default_country="MX",
    channels=CHANNELS,
    status_query=ByIds(chunk=100, build=status_requests, parse=parse_status),
    reply_query=ByDateRange(build=replies_between, parse=parse_replies),
    balance=BalanceQuery(build_balance, parse_balance),
    # "sent" is the best news this vendor ever gives: no handset receipt follows it. A failure may
    # still follow it (the manual gives no bound; carriers report within minutes): an hour.
    final=frozenset({base.DeliveryState.SENT, base.DeliveryState.DELIVERED, base.DeliveryState.FAILED}),
    settles_after=timedelta(hours=1),
)

__all__ = [
    "ABILITIES",
    "PUSH_ACK",
    "answer_push",
    "build_balance",
    "build_email",
    "build_replies",
    "build_send",
    "build_status",
    "build_voice",
    "check_recipient",
    "codes",
    "default_base_url",
    "key",
    "limits",
    "parse_balance",
    "parse_email",
    "parse_push",
    "parse_replies",
    "parse_send",
    "parse_status",
    "parse_voice",
    "push_content_types",
    "push_methods",
    "status_codes",
    "text_limit",
    "validate_options",
    "vendor_number",
]
