"""smsclouds email campaigns (POST ``/api/v1/email``) and voice blaster calls (POST ``/api/v1/voice``).

Each carries a list of people (an ``email`` or a ``cellphone``, with the optional fields the body
names as ``<+NAME+>``, ``<+FIELD1+>``...) and may be scheduled; the vendor answers one
``{"message": ...}`` for the whole campaign, not ids. The job channels that use them are in
``channels``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from dispatcher.errors import VendorRetryable
from dispatcher.vendors import base
from dispatcher.vendors.smsclouds import wire

#: how ``scheduledDate`` is written (the manual's examples: "2018-08-07 14:26")
SCHEDULE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
#: optional per-person fields of email and voice recipients (the body uses <+NAME+>, <+FIELD1+>...)
PERSON_FIELDS = ("name", "field1", "field2", "field3", "field4")


def build_email(
    account: base.Account,
    *,
    subject: str,
    body: str,
    recipients: Sequence[Mapping[str, str]],
    attachment: int | None = None,
    scheduled_date: datetime | str | None = None,
) -> httpx.Request:
    """POST /api/v1/email: one email campaign; raise ValueError on input the manual refuses."""
    for name, value in (("subject", subject), ("body", body)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"email {name} must be a non-empty text")
    people = _people(recipients, "email")
    if any("@" not in p["email"] for p in people):
        raise ValueError("every email recipient needs an address with '@'")
    payload: dict[str, Any] = {"body": body, "subject": subject, "recipients": people}
    if attachment is not None:
        payload["attachment"] = wire.whole_number("attachment", attachment)
    if scheduled_date is not None:
        payload["scheduledDate"] = wire.vendor_date("scheduledDate", scheduled_date, *SCHEDULE_FORMATS)
    return wire.post(account, "/api/v1/email", payload)


def build_voice(
    account: base.Account,
    *,
    kind: int,
    campaign_name: str,
    recipients: Sequence[Mapping[str, str]],
    audio: int | None = None,
    text: str | None = None,
    remittent: str | None = None,
    scheduled_date: datetime | str | None = None,
    transfer_num: str | None = None,
    transfer_key: int | str | None = None,
) -> httpx.Request:
    """POST /api/v1/voice: kind 1 plays a saved ``audio``, kind 2 speaks ``text``."""
    _check_voice(kind, campaign_name, audio, text, transfer_num, transfer_key)
    people = [{**p, "cellphone": wire.national(p["cellphone"])} for p in _people(recipients, "cellphone")]
    payload: dict[str, Any] = {"type": kind, "campaign_name": campaign_name, "recipients": people}
    payload.update({"audio": wire.whole_number("audio", audio)} if kind == 1 else {"text": text})
    for name, value in (("remittent", remittent), ("transfer_num", transfer_num)):
        if value is not None:
            payload[name] = wire.national(value)
    if transfer_key is not None:
        payload["transfer_key"] = str(transfer_key)  # a string, as in the manual's example
    if scheduled_date is not None:
        payload["scheduledDate"] = wire.vendor_date("scheduledDate", scheduled_date, *SCHEDULE_FORMATS)
    return wire.post(account, "/api/v1/voice", payload)


def _check_voice(
    kind: Any, campaign_name: Any, audio: Any, text: Any, transfer_num: Any, transfer_key: Any
) -> None:
    if isinstance(kind, bool) or kind not in (1, 2):
        raise ValueError(f"voice type must be 1 (saved audio) or 2 (text to speech), not {kind!r}")
    if kind == 1 and (audio is None or text is not None):
        raise ValueError("voice type 1 (saved audio) needs audio and no text")
    if kind == 2 and (not isinstance(text, str) or not text.strip() or audio is not None):
        raise ValueError("voice type 2 (text to speech) needs text and no audio")
    if not isinstance(campaign_name, str) or not campaign_name.strip():
        raise ValueError("voice campaign_name must be a non-empty text")
    if (transfer_num is None) != (transfer_key is None):
        raise ValueError("transfer_num and transfer_key go together")
    if transfer_key is not None and (len(str(transfer_key)) != 1 or str(transfer_key) not in "0123456789*#"):
        raise ValueError(f"transfer_key must be one phone key, not {transfer_key!r}")


def parse_campaign(response: httpx.Response) -> str:
    """Read the ``message`` of an email or voice campaign reply."""
    base.raise_for_status(response)
    body = wire.read_json(response)
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        raise VendorRetryable(f"smsclouds answered no campaign message: {base.short_body(response)}")
    message: str = body["message"]
    return message


parse_email = parse_voice = parse_campaign


def _people(recipients: Any, required: str) -> list[dict[str, str]]:
    if isinstance(recipients, (str, bytes)) or not isinstance(recipients, Sequence) or not recipients:
        raise ValueError("recipients must be a non-empty list of objects")
    people = []
    for person in recipients:
        if not isinstance(person, Mapping) or not person.get(required):
            raise ValueError(f"every recipient needs {required!r}")
        unknown = set(person) - {required, *PERSON_FIELDS}
        if unknown:
            raise ValueError(f"recipient field {sorted(unknown)[0]!r} is not in the manual")
        people.append({name: str(value) for name, value in person.items()})
    return people
