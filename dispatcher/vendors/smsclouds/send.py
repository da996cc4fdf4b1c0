"""Sending SMS through smsclouds: POST ``/api/v1/message``, one request per route, text and encoding.

Sample request and reply; ``messages_ids`` follow the order of ``cellphones``::

    {"message": "Hello <+B+> ...", "cellphones": ["4498987282", "4492799694"], "country": 1,
     "combination": [{"names": ["John", "Joe"], "field1": ["7SADAS6D786A", "7SADAS6D786B"]}],
     "allow_responses": true, "encode": true, "large_message": true}

    {"data": {"information": "Messages Added Correctly", "added": 3, "campaign_id": 14,
              "messages_ids": [40, 41, 42]}}

A job on another channel (email, voice) is handed to ``channels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from dispatcher.errors import VendorAccountError, VendorRetryable
from dispatcher.vendors import base
from dispatcher.vendors.smsclouds import channels, combination, wire


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``encode: true`` (force UCS-2) and nothing else; the rest is chosen from the text."""
    if _channel(options) != "sms":
        return channels.validate(options)
    unknown = set(options) - {"encode"}
    if unknown:
        raise ValueError(f"smsclouds takes no option {sorted(unknown)[0]!r}")
    if "encode" in options and options["encode"] is not True:
        raise ValueError("encode may only be true: plain text is chosen from the text itself")
    return dict(options)


def text_limit(text: str, options: Mapping[str, Any]) -> int:
    """70 characters when the text goes encoded, else 306 (``large_message`` past 160)."""
    if _channel(options) != "sms":
        return channels.MAX_CHARS
    return wire.ENCODED_MAX if options.get("encode") is True or wire.needs_encode(text) else wire.LARGE_MAX


def check_recipient(recipient: base.Recipient, options: Mapping[str, Any]) -> str | None:
    """Say why a recipient cannot go through smsclouds, or None; checked before any request."""
    if _channel(options) != "sms":
        return channels.check(recipient, _channel(options))
    return _unsendable(recipient)


def build_send(account: base.Account, outgoing: base.Outgoing) -> list[base.SendRequest]:
    """One JSON POST per route, text and encoding; or per route, template and encoding (``combination``)."""
    if _channel(outgoing.options) != "sms":
        return channels.build(account, outgoing)
    forced = outgoing.options.get("encode") is True
    groups: dict[tuple[int, str, bool], list[base.Recipient]] = {}
    personal: dict[tuple[int, str, bool, bool], list[tuple[base.Recipient, list[str]]]] = {}
    for r in outgoing.recipients:
        why = _unsendable(r)
        route = wire.vendor_number(r.address)
        if why or route is None:
            # The sender checks first; never let such a number reach the vendor.
            raise ValueError(why or "smsclouds has no route for this number's country")
        encode = forced or wire.needs_encode(r.text + "".join(_used_vars(r)))
        large = not encode and len(r.text) > wire.PLAIN_MAX
        fields = combination.values(r)
        if fields is not None and r.template is not None and len(r.text) <= combination.limit(encode, large):
            personal.setdefault((route[0], r.template, encode, large), []).append((r, fields))
        else:
            groups.setdefault((route[0], r.text, encode), []).append(r)
    requests = []
    for (country, template, encode, large), members in personal.items():
        form = combination.vendor_form(template)
        if (
            form is None
            or len({r.text for r, _ in members}) == 1
            or len(form[0]) > combination.limit(encode, large)
        ):
            # One text for all needs no fields; a message whose markers outgrow the limit goes per text.
            for r, _ in members:
                groups.setdefault((country, r.text, encode), []).append(r)
            continue
        rs = [r for r, _ in members]
        fill = combination.columns([fields for _, fields in members])
        requests.append(base.SendRequest(_message_request(account, country, form[0], encode, large, rs, fill), rs))
    for (country, text, encode), rs in groups.items():
        fill = {name: [r.vars[var] for r in rs] for m, (var, name) in wire.MARKERS.items() if m in text}
        large = not encode and len(text) > wire.PLAIN_MAX
        requests.append(base.SendRequest(_message_request(account, country, text, encode, large, rs, fill), rs))
    return requests


def parse_send(account: base.Account, sent: base.SendRequest, response: httpx.Response) -> list[base.Result]:
    """Map ``messages_ids`` onto the cellphones in order."""
    if not sent.request.url.path.endswith("/message"):
        return channels.parse(sent, response)
    _raise_for_credit(response)
    base.raise_for_status(response)
    sendable = list(sent.recipients)
    body = wire.read_json(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("status_code"))
        # An error code the manual does not list says nothing of what went out: never resend blindly.
        return [
            base.result_for_code(r, code, wire.codes, wire.key, undocumented=base.Outcome.UNKNOWN)
            for r in sendable
        ]
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise VendorRetryable(f"smsclouds answered neither data nor error: {base.short_body(response)}")
    ids = data.get("messages_ids")
    if not isinstance(ids, list) or len(ids) != len(sendable) or not all(map(wire.is_id, ids)):
        # It took the request but we cannot tell which id is whose: never resend blindly.
        reason = f"smsclouds took {len(sendable)} numbers but answered messages_ids {str(ids)[:80]}"
        return [base.Result(r.message_id, base.Outcome.UNKNOWN, reason=reason) for r in sendable]
    campaign = f"smsclouds campaign {data.get('campaign_id')}"
    return [
        base.Result(r.message_id, base.Outcome.ACCEPTED, vendor_id=str(i), reason=campaign)
        for r, i in zip(sendable, ids, strict=True)
    ]


def _raise_for_credit(response: httpx.Response) -> None:
    """The manual documents no 'no credit' answer; an error that says so pauses the account."""
    if response.status_code < 400:
        return
    try:
        information = str(response.json().get("error", {}).get("information", ""))
    except (ValueError, AttributeError):
        return
    if any(word in information.lower() for word in ("credit", "saldo", "balance")):
        raise VendorAccountError(
            f"smsclouds {response.status_code}: {information[:200]}", str(response.status_code)
        )


def _channel(options: Mapping[str, Any]) -> str:
    return str(options.get("channel", "sms"))


def _unsendable(recipient: base.Recipient) -> str | None:
    if wire.vendor_number(recipient.address) is None:
        return "smsclouds has no route for this number's country"
    for marker, (var, _) in wire.MARKERS.items():
        if marker in recipient.text and recipient.template is not None and marker not in recipient.template:
            # The job's text does not write it: a value brought it, and the vendor would fill it.
            return f"a value holds the vendor's marker {marker}, which the vendor would fill"
        if marker in recipient.text and var not in recipient.vars:
            return f"the text uses {marker} but the recipient has no var {var!r}"
    if len(recipient.text) > wire.ENCODED_MAX and wire.needs_encode("".join(_used_vars(recipient))):
        # Its vars need encode, whose limit the text (checked at ingest without vars) exceeds.
        return (
            f"its vars need encode, which takes {wire.ENCODED_MAX} characters; the text has {len(recipient.text)}"
        )
    return None


def _used_vars(recipient: base.Recipient) -> list[str]:
    return [recipient.vars[var] for marker, (var, _) in wire.MARKERS.items() if marker in recipient.text]


def _message_request(
    account: base.Account,
    country: int,
    message: str,
    encode: bool,
    large: bool,
    recipients: list[base.Recipient],
    fill: dict[str, list[str]],
) -> httpx.Request:
    payload: dict[str, Any] = {
        "message": message,
        # build_send refused every number without a route, so none is left out here
        "cellphones": [route[1] for r in recipients if (route := wire.vendor_number(r.address))],
        "country": country,
        "allow_responses": True,  # the manual: always true
    }
    if fill:
        payload["combination"] = [fill]
    if encode:
        payload["encode"] = True
    elif large:
        payload["large_message"] = True
    return wire.post(account, "/api/v1/message", payload)
