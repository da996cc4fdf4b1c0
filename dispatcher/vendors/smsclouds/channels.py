"""smsclouds email campaigns and voice blaster calls as job channels ``email`` and ``voice``.

A job says ``"channel": "email"`` (recipients ``{"email": ..., "vars": {"name", "field1".."field4"}}``)
or ``"channel": "voice"`` (recipients with a phone). Its vendor options:

- email: ``subject`` (required), ``attachment`` (a saved attachment id), ``scheduled_date``.
- voice: ``voice_type`` 2 speaks the job's text (the default), 1 plays the saved ``audio`` id (the
  text is then kept as the job's description, not sent); ``campaign_name`` (default: "smsdispatch"),
  ``remittent``, ``transfer_num`` with ``transfer_key``, ``scheduled_date``.

One campaign request carries every recipient of a batch with the same text; the vendor answers a
message, not ids, so each recipient is accepted without a vendor id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from dispatcher.vendors import base
from dispatcher.vendors.smsclouds import campaigns, wire

CHANNELS = ("sms", "email", "voice")
EMAIL_OPTIONS = {"channel", "subject", "attachment", "scheduled_date"}
VOICE_OPTIONS = {"channel", "voice_type", "audio", "campaign_name", "remittent", "transfer_num",
                 "transfer_key", "scheduled_date"}  # fmt: skip
#: characters of an email body or a text to speak (the manual sets none; the job's own cap)
MAX_CHARS = 4096
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check an email or voice job's options; raise ValueError naming the bad one."""
    channel = options["channel"]
    allowed = EMAIL_OPTIONS if channel == "email" else VOICE_OPTIONS
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"smsclouds {channel} takes no option {sorted(unknown)[0]!r}")
    probe = [{"email": "probe@example.com"}] if channel == "email" else [{"cellphone": "4491234567"}]
    # Build once with a stand-in recipient: the manual's own checks run on the options.
    _build(
        base.Account("probe", "smsclouds", "https://probe.invalid", "MX", {"token": "x"}), options, "probe", probe
    )
    return dict(options)


def check(recipient: base.Recipient, channel: str) -> str | None:
    """Say why a recipient cannot be reached on this channel, or None."""
    if channel == "email":
        return None if _EMAIL.match(recipient.address) else f"{recipient.address!r} is not an email address"
    return None if wire.vendor_number(recipient.address) else "smsclouds has no route for this number's country"


def build(account: base.Account, outgoing: base.Outgoing) -> list[base.SendRequest]:
    """One campaign request per distinct text."""
    channel = outgoing.options["channel"]
    by_text: dict[str, list[base.Recipient]] = {}
    for r in outgoing.recipients:
        why = check(r, channel)
        if why:
            raise ValueError(why)
        by_text.setdefault(r.text, []).append(r)
    return [
        base.SendRequest(_build(account, outgoing.options, text, [_person(r, channel) for r in rs]), rs)
        for text, rs in by_text.items()
    ]


def parse(sent: base.SendRequest, response: httpx.Response) -> list[base.Result]:
    """The vendor's message accepts every recipient of the campaign."""
    message = campaigns.parse_campaign(response)
    return [
        base.Result(r.message_id, base.Outcome.ACCEPTED, reason=f"smsclouds: {message}") for r in sent.recipients
    ]


def _person(recipient: base.Recipient, channel: str) -> dict[str, str]:
    fields = {k: v for k, v in recipient.vars.items() if k in campaigns.PERSON_FIELDS}
    address = "email" if channel == "email" else "cellphone"
    return {address: recipient.address, **fields}


def _build(
    account: base.Account, options: Mapping[str, Any], text: str, people: list[dict[str, str]]
) -> httpx.Request:
    if options["channel"] == "email":
        return campaigns.build_email(
            account,
            subject=options.get("subject"),  # type: ignore[arg-type]
            body=text,
            recipients=people,
            attachment=options.get("attachment"),
            scheduled_date=options.get("scheduled_date"),
        )
    kind = options.get("voice_type", 2)
    return campaigns.build_voice(
        account,
        kind=kind,
        campaign_name=options.get("campaign_name", "smsdispatch"),
        recipients=people,
        audio=options.get("audio"),
        text=text if kind == 2 else None,
        remittent=options.get("remittent"),
        scheduled_date=options.get("scheduled_date"),
        transfer_num=options.get("transfer_num"),
        transfer_key=options.get("transfer_key"),
    )
