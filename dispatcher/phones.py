"""Phone numbers to E.164 with ``phonenumbers``; a national number takes the account's country."""

from __future__ import annotations

import phonenumbers

from dispatcher.errors import BadNumber


def to_e164(raw: object, country: str) -> str:
    """Return the E.164 form of ``raw``, or raise BadNumber with a reason."""
    if not isinstance(raw, (str, int)) or isinstance(raw, bool):
        raise BadNumber(f"phone must be a string, not {type(raw).__name__}")
    text = str(raw).strip()
    if not text:
        raise BadNumber("phone is empty")
    if len(text) > 32:
        raise BadNumber(f"phone {text[:32]!r}… is too long")
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException as exc:
        raise BadNumber(f"phone {text!r} cannot be read: {exc._msg}") from None
    if not phonenumbers.is_valid_number(number):
        raise BadNumber(f"phone {text!r} is not a valid number for {country} or its country code")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
