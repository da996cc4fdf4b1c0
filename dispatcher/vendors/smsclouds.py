"""Api Smsclouds V1 (Max4Systems / masmensajes), Mexico and routes: the manual is seeds/000 (English).

Every call carries ``Authorization: Bearer <token>`` and JSON. Sending is POST ``/api/v1/message``::

    {"message": "Hello <+B+> ...", "cellphones": ["4498987282", "4492799694"], "country": 1,
     "combination": [{"names": ["John", "Joe"], "field1": ["7SADAS6D786A", "7SADAS6D786B"]}],
     "allow_responses": true, "encode": true, "large_message": true}

Sample reply; ``messages_ids`` follow the order of ``cellphones``::

    {"data": {"information": "Messages Added Correctly", "added": 3, "campaign_id": 14,
              "messages_ids": [40, 41, 42]}}

Errors are HTTP 400/401/404/422/500 with ``{"error": {"information": ..., "status_code": 422}}``.

Texts. The dispatcher renders ``{name}`` templates before we see them, so recipients with the same
final text and route share one request. A job that wants the vendor to personalise instead writes
the vendor's markers in its text: ``<+B+>`` takes the recipient's var ``name``, ``<+C+>``..``<+F+>``
take ``field1``..``field4``; they travel as ``combination`` arrays, one value per cellphone. The
manual's 1-160 limit is on the ``message`` parameter, so markers count as written. ``encode`` is set
when the text or a var it uses has a character outside ASCII GSM-7 (the manual: accents need it),
and then the limit is 70; plain text over 160 goes with ``large_message`` (306). The only option is
``encode: true``, which forces UCS-2 on plain text.

A recipient we cannot send (no route for its country, a marker whose var it lacks, vars that need
``encode`` with a text over 70) is refused by ``check_recipient`` before any request: the national
digits of a number without a route could reach someone else in another country.

Phones in status and reply answers are the vendor's national digits: its replies name no country.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import phonenumbers

from dispatcher.errors import VendorAccountError, VendorRetryable
from dispatcher.text import is_gsm7
from dispatcher.vendors.abilities import Abilities, BalanceQuery, ByDateRange, ByIds, Credentials
from dispatcher.vendors.base import (
    Account,
    Balance,
    CodeRule,
    DeliveryState,
    Inbound,
    Limits,
    Outcome,
    Outgoing,
    Recipient,
    Result,
    SendRequest,
    StatusReport,
    raise_for_status,
    result_for_code,
    short_body,
)

key = "smsclouds"
default_base_url = "https://smsclouds.cloud"
#: job channels this vendor carries (email and voice live in ``smsclouds_channels``)
channels = ("sms", "email", "voice")

# The same table for every endpoint; HTTP statuses become errors in base.raise_for_status, and
# a 2xx whose body still carries {"error": {"status_code": ...}} is read through this table.
codes: dict[str, CodeRule] = {
    "400": CodeRule(Outcome.REJECTED, "bad request: the JSON is missing or not correct"),
    "401": CodeRule(Outcome.PAUSE_ACCOUNT, "unauthorized: the token is wrong"),
    "404": CodeRule(Outcome.REJECTED, "the route was not found: wrong base URL or path"),
    "422": CodeRule(Outcome.REJECTED, "unprocessable: a parameter is wrong (text, number, country)"),
    "500": CodeRule(Outcome.RETRY, "internal server error at smsclouds: try again later"),
}

#: ``status`` of POST /api/v1/status -> delivery state
status_codes: dict[str, DeliveryState] = {
    "0": DeliveryState.QUEUED,  # queued
    "1": DeliveryState.QUEUED,  # in process: the vendor still holds it
    "2": DeliveryState.SENT,  # sent (the manual promises no handset receipt)
    "3": DeliveryState.FAILED,  # fail
}

# No maximum is documented. 500 numbers keep one JSON body to tens of KB, let the vendor add them
# all before it answers (it replies after date_finish_add) within the read timeout, and bound how
# many messages one lost reply leaves unknown.
limits = Limits(batch_size=500, hard_max_recipients=500, min_interval=0.0, max_text_chars=306)

#: the manual's route table: ISO region -> ``country`` id
COUNTRY_IDS = {"MX": 1, "US": 2, "CO": 3, "BR": 6, "PE": 7, "AR": 14, "CL": 18, "ES": 21}
#: marker in the text -> (recipient var, key in ``combination``; the manual's examples write "names")
MARKERS = {
    "<+B+>": ("name", "names"),
    "<+C+>": ("field1", "field1"),
    "<+D+>": ("field2", "field2"),
    "<+E+>": ("field3", "field3"),
    "<+F+>": ("field4", "field4"),
}
PLAIN_MAX, ENCODED_MAX, LARGE_MAX = 160, 70, 306  #: characters of ``message``
#: the body our MO push endpoint must answer (the keyword endpoint answers the reply text instead)
PUSH_ACK = "ok"
_DIGITS = re.compile(r"[0-9]+")


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``encode: true`` (force UCS-2) and nothing else; the rest is chosen from the text."""
    if _channel(options) != "sms":
        return _campaigns().validate(options)
    unknown = set(options) - {"encode"}
    if unknown:
        raise ValueError(f"smsclouds takes no option {sorted(unknown)[0]!r}")
    if "encode" in options and options["encode"] is not True:
        raise ValueError("encode may only be true: plain text is chosen from the text itself")
    return dict(options)


def text_limit(text: str, options: Mapping[str, Any]) -> int:
    """70 characters when the text goes encoded, else 306 (``large_message`` past 160)."""
    if _channel(options) != "sms":
        return _campaigns().MAX_CHARS
    return ENCODED_MAX if options.get("encode") is True or needs_encode(text) else LARGE_MAX


def needs_encode(text: str) -> bool:
    """Say whether a text needs ``encode``: anything beyond ASCII GSM-7, accents included."""
    return not (text.isascii() and is_gsm7(text))


def vendor_number(phone: str) -> tuple[int, str] | None:
    """E.164 to (route id, national digits), or None when the manual lists no route for it."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    country = COUNTRY_IDS.get(phonenumbers.region_code_for_number(number) or "")
    return (country, phonenumbers.national_significant_number(number)) if country else None


def check_recipient(recipient: Recipient, options: Mapping[str, Any]) -> str | None:
    """Say why a recipient cannot go through smsclouds, or None; checked before any request."""
    if _channel(options) != "sms":
        return _campaigns().check(recipient, _channel(options))
    return _unsendable(recipient)


def build_send(account: Account, outgoing: Outgoing) -> list[SendRequest]:
    """One JSON POST per route, text and encoding."""
    if _channel(outgoing.options) != "sms":
        return _campaigns().build(account, outgoing)
    groups: dict[tuple[int, str, bool], list[Recipient]] = {}
    for r in outgoing.recipients:
        why = _unsendable(r)
        route = vendor_number(r.phone)
        if why or route is None:
            # The sender checks first; never let such a number reach the vendor.
            raise ValueError(why or "smsclouds has no route for this number's country")
        encode = outgoing.options.get("encode") is True or needs_encode(r.text + "".join(_used_vars(r)))
        groups.setdefault((route[0], r.text, encode), []).append(r)
    return [SendRequest(_message_request(account, *group, rs), rs) for group, rs in groups.items()]


def parse_send(account: Account, sent: SendRequest, response: httpx.Response) -> list[Result]:
    """Map ``messages_ids`` onto the cellphones in order."""
    if not sent.request.url.path.endswith("/message"):
        return _campaigns().parse(sent, response)
    _raise_for_credit(response)
    raise_for_status(response)
    sendable = list(sent.recipients)
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = str(body["error"].get("status_code"))
        # An error code the manual does not list says nothing of what went out: never resend blindly.
        return [result_for_code(r, code, codes, key, undocumented=Outcome.UNKNOWN) for r in sendable]
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise VendorRetryable(f"smsclouds answered neither data nor error: {short_body(response)}")
    ids = data.get("messages_ids")
    if not isinstance(ids, list) or len(ids) != len(sendable) or not all(map(_is_id, ids)):
        # It took the request but we cannot tell which id is whose: never resend blindly.
        reason = f"smsclouds took {len(sendable)} numbers but answered messages_ids {str(ids)[:80]}"
        return [Result(r.message_id, Outcome.UNKNOWN, reason=reason) for r in sendable]
    campaign = f"smsclouds campaign {data.get('campaign_id')}"
    return [
        Result(r.message_id, Outcome.ACCEPTED, vendor_id=str(i), reason=campaign)
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


def _campaigns():  # type: ignore[no-untyped-def]
    # Imported late: the channels module builds on this one.
    from dispatcher.vendors import smsclouds_channels

    return smsclouds_channels


def _unsendable(recipient: Recipient) -> str | None:
    if vendor_number(recipient.phone) is None:
        return "smsclouds has no route for this number's country"
    for marker, (var, _) in MARKERS.items():
        if marker in recipient.text and var not in recipient.vars:
            return f"the text uses {marker} but the recipient has no var {var!r}"
    if len(recipient.text) > ENCODED_MAX and needs_encode("".join(_used_vars(recipient))):
        # Its vars need encode, whose limit the text (checked at ingest without vars) exceeds.
        return f"its vars need encode, which takes {ENCODED_MAX} characters; the text has {len(recipient.text)}"
    return None


def _used_vars(recipient: Recipient) -> list[str]:
    return [recipient.vars[var] for marker, (var, _) in MARKERS.items() if marker in recipient.text]


def _message_request(
    account: Account, country: int, text: str, encode: bool, recipients: list[Recipient]
) -> httpx.Request:
    payload: dict[str, Any] = {
        "message": text,
        "cellphones": [vendor_number(r.phone)[1] for r in recipients],  # type: ignore[index]
        "country": country,
        "allow_responses": True,  # the manual: always true
    }
    combination = {name: [r.vars[var] for r in recipients] for m, (var, name) in MARKERS.items() if m in text}
    if combination:
        payload["combination"] = [combination]
    if encode:
        payload["encode"] = True
    elif len(text) > PLAIN_MAX:
        payload["large_message"] = True
    return _post(account, "/api/v1/message", payload)


def build_status(account: Account, vendor_ids: Sequence[str], campaign_ids: Sequence[str] = ()) -> httpx.Request:
    """POST /api/v1/status for these message ids (and whole campaigns)."""
    payload = {}
    if vendor_ids:
        payload["message_ids"] = _ids("message_ids", vendor_ids)
    if campaign_ids:
        payload["campaign_ids"] = _ids("campaign_ids", campaign_ids)
    if not vendor_ids and not campaign_ids:
        raise ValueError("a status query needs message ids or campaign ids")
    return _post(account, "/api/v1/status", payload)


def parse_status(response: httpx.Response) -> list[StatusReport]:
    """One report per ``data.messages`` item; an undocumented status stays queued, kept raw."""
    return [
        StatusReport(
            str(item["message_id"]),
            status_codes.get(str(item.get("status")), DeliveryState.QUEUED),
            code=str(item.get("status")),
            phone=str(item["cellphone"]) if item.get("cellphone") is not None else None,
        )
        for item in _items(response, "messages", ("message_id", "status"))
    ]


#: reply query type -> the filters it takes, the required one first
REPLY_TYPES = {1: ("from", "to"), 2: ("message_id",), 3: ("cellphone",), 4: ("campaign_id",)}


def build_replies(account: Account, **filters: Any) -> httpx.Request:
    """POST /api/v1/response: type 1 from/to, 2 message_id list, 3 cellphone, 4 campaign_id."""
    kind = filters.pop("type", None)
    if kind is None:
        kind = next((t for t, names in REPLY_TYPES.items() if names[0] in filters), None)
    if isinstance(kind, bool) or kind not in REPLY_TYPES:
        raise ValueError(f"type must be 1, 2, 3 or 4 (or implied by a filter), not {kind!r}")
    extra = set(filters) - set(REPLY_TYPES[kind])
    if extra:
        raise ValueError(f"filter {sorted(extra)[0]!r} does not go with type {kind}")
    required = REPLY_TYPES[kind][0]
    if filters.get(required) in (None, "", [], ()):
        raise ValueError(f"type {kind} needs {required!r}")
    payload = {"type": kind, **{name: _REPLY_FILTERS[name](value) for name, value in filters.items()}}
    return _post(account, "/api/v1/response", payload)


_REPLY_FILTERS = {
    "from": lambda v: _date("from", v, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"),
    "to": lambda v: _date("to", v, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"),
    "message_id": lambda v: _ids("message_id", v),
    "cellphone": lambda v: _int("cellphone", _national(v)),
    "campaign_id": lambda v: _int("campaign_id", v),
}


def parse_replies(response: httpx.Response) -> list[Inbound]:
    """One Inbound per ``data.responses`` item; ``vendor_id`` is the id of our message answered."""
    return [
        Inbound(str(i["cellphone"]), str(i["response"]), vendor_id=str(i["message_id"]), at=i.get("received_at"))
        for i in _items(response, "responses", ("cellphone", "response", "message_id"))
    ]


def build_balance(account: Account) -> httpx.Request:
    """GET /api/v1/user: the account and its credit."""
    return httpx.Request("GET", _url(account, "/api/v1/user"), headers=_headers(account))


def parse_balance(response: httpx.Response) -> Balance:
    """Read ``data.credit``."""
    credit = _data(response).get("credit")
    if isinstance(credit, bool) or not isinstance(credit, (int, float)):
        raise VendorRetryable(f"smsclouds answered no data.credit: {short_body(response)}")
    return Balance(float(credit))


#: the MO and keyword pushes are GETs with the fields in the query string
push_methods = frozenset({"GET"})
push_content_types: frozenset[str] = frozenset()


def parse_push(params: Mapping[str, str]) -> list[Inbound]:
    """Read the MO push (message_id) or the keyword auto-reply push (keyword, operador)."""
    fields = {name.lower(): value for name, value in params.items()}
    kind = "keyword" if "keyword" in fields else "message_id"
    missing = [name for name in ("response", "cellphone", kind, "date") if not fields.get(name)]
    if missing:
        raise ValueError(f"smsclouds push without {missing[0]!r}")
    return [
        Inbound(
            fields["cellphone"],
            fields["response"],
            vendor_id=fields.get("message_id"),
            at=fields["date"],
            keyword=fields.get("keyword"),
        )
    ]


def answer_push(items: Sequence[Inbound | StatusReport], keyword_reply: str | None) -> str:
    """``ok`` for an MO; for a keyword the auto-reply text itself (empty: no auto-reply)."""
    if any(isinstance(item, Inbound) and item.keyword for item in items):
        # The manual: the client server "should respond a simple print for your automatic text".
        return keyword_reply or ""
    return "ok"


#: how ``scheduledDate`` is written (the manual's examples: "2018-08-07 14:26")
SCHEDULE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
#: optional per-person fields of email and voice recipients (the body uses <+NAME+>, <+FIELD1+>...)
PERSON_FIELDS = ("name", "field1", "field2", "field3", "field4")


def build_email(
    account: Account,
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
        payload["attachment"] = _int("attachment", attachment)
    if scheduled_date is not None:
        payload["scheduledDate"] = _date("scheduledDate", scheduled_date, *SCHEDULE_FORMATS)
    return _post(account, "/api/v1/email", payload)


def build_voice(
    account: Account,
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
    people = [{**p, "cellphone": _national(p["cellphone"])} for p in _people(recipients, "cellphone")]
    payload: dict[str, Any] = {"type": kind, "campaign_name": campaign_name, "recipients": people}
    payload.update({"audio": _int("audio", audio)} if kind == 1 else {"text": text})
    for name, value in (("remittent", remittent), ("transfer_num", transfer_num)):
        if value is not None:
            payload[name] = _national(value)
    if transfer_key is not None:
        payload["transfer_key"] = str(transfer_key)  # a string, as in the manual's example
    if scheduled_date is not None:
        payload["scheduledDate"] = _date("scheduledDate", scheduled_date, *SCHEDULE_FORMATS)
    return _post(account, "/api/v1/voice", payload)


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
    raise_for_status(response)
    body = _json(response)
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        raise VendorRetryable(f"smsclouds answered no campaign message: {short_body(response)}")
    return body["message"]


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


def _national(phone: Any) -> str:
    text = str(phone).strip()
    if _DIGITS.fullmatch(text):
        return text
    route = vendor_number(text) if text.startswith("+") else None
    if route is None:
        raise ValueError(f"{text!r} is neither national digits nor an E.164 number of a route")
    return route[1]


def _ids(name: str, values: Any) -> list[int]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a list of ids, not {values!r}")
    return [_int(name, v) for v in values]


def _int(name: str, value: Any) -> int:
    if not _is_id(value):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def _date(name: str, value: datetime | str, *formats: str) -> str:
    if isinstance(value, datetime):
        return value.strftime(formats[0])
    for fmt in formats:
        try:
            datetime.strptime(str(value), fmt)
        except ValueError:
            continue
        return str(value)
    raise ValueError(f"{name} must be a date written {' or '.join(formats)}, not {value!r}")


def _is_id(value: Any) -> bool:
    return not isinstance(value, bool) and _DIGITS.fullmatch(str(value)) is not None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise VendorRetryable(f"smsclouds answered no JSON: {short_body(response)}") from None


def _data(response: httpx.Response) -> dict[str, Any]:
    raise_for_status(response)
    body = _json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise VendorRetryable(f"smsclouds answered no data: {short_body(response)}")
    return data


def _items(response: httpx.Response, field: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    data = _data(response)
    items = data.get(field)
    if items is None and data.get("count") == 0:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) and set(required) <= set(i) for i in items):
        raise VendorRetryable(f"smsclouds answered no usable data.{field}: {short_body(response)}")
    return items


def _headers(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.params['token']}", "Accept": "application/json"}


def _url(account: Account, path: str) -> str:
    return account.base_url.rstrip("/") + path


def _post(account: Account, path: str, payload: Mapping[str, Any]) -> httpx.Request:
    return httpx.Request("POST", _url(account, path), json=payload, headers=_headers(account))


# Dates in queries are the vendor's wall time (Mexico City).
_ZONE = ZoneInfo("America/Mexico_City")

ABILITIES = Abilities(
    credentials=Credentials(required=("token",), secret=("token",)),
    default_country="MX",
    status_query=ByIds(chunk=100, build=lambda account, ids: [build_status(account, ids)], parse=parse_status),
    reply_query=ByDateRange(
        build=lambda account, start, end: build_replies(
            account, type=1, **{"from": start.astimezone(_ZONE), "to": end.astimezone(_ZONE)}
        ),
        parse=parse_replies,
    ),
    balance=BalanceQuery(build_balance, parse_balance),
    # "sent" is the best news this vendor ever gives: no handset receipt follows it. A failure may
    # still follow it (the manual gives no bound; carriers report within minutes): an hour.
    final=frozenset({DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.FAILED}),
    settles_after=timedelta(hours=1),
)
