"""Api Smsclouds V1's parameter table: each field a request carries, checked as the vendor's
validation does (a :class:`Refusal` answers 422 with the field's information).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import phonenumbers

from dispatcher.sandbox.skeleton import read_date

#: the manual's country table: ``country`` id -> region
ROUTES = {1: "MX", 2: "US", 3: "CO", 6: "BR", 7: "PE", 14: "AR", 18: "CL", 21: "ES"}
PLAIN_MAX, ENCODED_MAX, LARGE_MAX = 160, 70, 306  #: characters of ``message``
#: marker -> the ``combination`` keys that fill it (the manual writes both "name" and "names")
MARKERS = {
    "<+B+>": ("names", "name"),
    "<+C+>": ("field1",),
    "<+D+>": ("field2",),
    "<+E+>": ("field3",),
    "<+F+>": ("field4",),
}
DATE = "%Y-%m-%d %H:%M:%S"
SCHEDULE_FORMATS = ("%Y-%m-%d %H:%M", DATE)  #: the manual's example: "2018-08-07 14:26"


class Refusal(Exception):
    """A request the vendor refuses, with its HTTP status and information."""

    def __init__(self, status: int, information: str):
        super().__init__(status, information)
        self.status, self.information = status, information


def message_fields(body: dict[str, Any], routes: frozenset[int]) -> tuple[str, list[tuple[str, str]]]:
    """The text and (national, E.164) numbers of a message request sent by one of ``routes``."""
    text = body.get("message")
    if not isinstance(text, str) or not text:
        raise Refusal(422, "The message field is required.")
    limit = message_limit(body)
    if len(text) > limit:
        raise Refusal(422, f"The message may not be greater than {limit} characters.")
    country = body.get("country")
    if isinstance(country, bool) or str(country) not in {str(c) for c in routes}:
        raise Refusal(422, "The selected country is invalid (check your routes).")
    phones = body.get("cellphones", body.get("cellphone"))  # the prose's bullet says "cellphone"
    if not isinstance(phones, list) or not phones:
        raise Refusal(422, "The cellphones must be an array.")
    return text, [cellphone(p, ROUTES[int(str(country))]) for p in phones]


def message_limit(body: dict[str, Any]) -> int:
    """Characters ``message`` may have: 70 with ``encode``, 306 with ``large_message``, else 160."""
    return ENCODED_MAX if flag(body, "encode") else LARGE_MAX if flag(body, "large_message") else PLAIN_MAX


def cellphone(value: Any, region: str) -> tuple[str, str]:
    """(national digits, E.164) of a cellphone possible in the route's region."""
    digits = str(value)
    try:
        number = phonenumbers.parse(digits, region)
        possible = digits.isdigit() and phonenumbers.is_possible_number(number)
    except phonenumbers.NumberParseException:
        possible = False
    if not possible:
        raise Refusal(422, f"The cellphone {digits[:20]!r} is not valid for the country.")
    return digits, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def personalise(text: str, combination: Any, count: int) -> list[str]:
    """Each number's text, its markers filled from the ``combination`` arrays."""
    if combination is None:
        return [text] * count
    if isinstance(combination, dict):
        combination = [combination]
    if not isinstance(combination, list) or not all(isinstance(c, dict) for c in combination):
        raise Refusal(422, "The combination must be an array.")
    values = {name: v for c in combination for name, v in c.items()}
    if any(not isinstance(v, list) or len(v) != count for v in values.values()):
        raise Refusal(422, "The combination arrays must be as long as cellphones.")
    texts = []
    for i in range(count):
        final = text
        for marker, names in MARKERS.items():
            column = next((values[n] for n in names if n in values), None)
            if column is not None:
                final = final.replace(marker, str(column[i]))
        texts.append(final)
    return texts


def read_field_date(value: Any, name: str, default: datetime | None = None) -> datetime:
    """A date field as the manual writes it; a bare day as ``to`` takes the whole day in."""
    if value in (None, "") and default is not None:
        return default  # "to": if not specified will search until actual date
    when = read_date(value, DATE, "%Y-%m-%d")
    if when is None:
        raise Refusal(422, f"The {name} is not a valid date (YYYY-MM-DD HH:mm:ss).")
    # A bare day as "to" takes the whole day in (the manual's examples give bare days).
    return when + timedelta(days=1, seconds=-1) if name == "to" and len(str(value)) == 10 else when


def ids_of(body: dict[str, Any], *names: str) -> set[int]:
    """The ids under the first of ``names`` the body has (the manual spells them several ways)."""
    name = next((n for n in names if n in body), None)
    if name is None:
        return set()
    values = body[name]
    if not isinstance(values, list) or not all(is_int(v) for v in values):
        raise Refusal(422, f"The {name} must be an array of ids.")
    return {int(v) for v in values}


def optional_int(body: dict[str, Any], name: str) -> int | None:
    """An integer field, or None when it is absent."""
    if body.get(name) is None:
        return None
    if not is_int(body[name]):
        raise Refusal(422, f"The {name} must be an integer.")
    return int(body[name])


def is_int(value: Any) -> bool:
    """Whether a value is an integer as Laravel's rule reads it (never a boolean)."""
    return not isinstance(value, bool) and str(value).isdigit()


def flag(body: dict[str, Any], name: str) -> bool:
    """A boolean field as Laravel's boolean rule takes it."""
    value = body.get(name, False)
    if value not in (True, False, 0, 1, "0", "1"):  # Laravel's boolean rule
        raise Refusal(422, f"The {name} field must be true or false.")
    return value in (True, 1, "1")


def required_text(body: dict[str, Any], name: str) -> None:
    """Refuse a text field that is missing or blank."""
    if not isinstance(body.get(name), str) or not body[name].strip():
        raise Refusal(422, f"The {name} field is required.")


def recipients_of(body: dict[str, Any], required: str) -> list[dict[str, Any]]:
    """The recipients of an email or voice campaign, each with its ``required`` field."""
    people = body.get("recipients")
    if not isinstance(people, list) or not people or not all(isinstance(p, dict) for p in people):
        raise Refusal(422, "The recipients must be an array.")
    if not all(p.get(required) for p in people):
        raise Refusal(422, f"The recipients.*.{required} field is required.")
    return people


def check_schedule(body: dict[str, Any]) -> None:
    """Refuse a ``scheduledDate`` in none of the manual's formats."""
    value = body.get("scheduledDate")
    if value is not None and read_date(value, *SCHEDULE_FORMATS) is None:
        raise Refusal(422, "The scheduled date is not a valid date.")
