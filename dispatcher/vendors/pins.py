"""PINs a vendor generated (a one-time code it texted): kept only as a salted, slow hash.

An adapter hashes the PIN the moment it reads it from the vendor's reply (``Result.pin_hash``);
checking a PIN someone types reads that hash back. The PIN itself is never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: PBKDF2 rounds for PIN hashes: a short PIN is cheap to guess, so make each guess cost
PIN_ROUNDS = 200_000


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """Return ``pbkdf2_sha256$rounds$salt$hash`` for a PIN, with a random salt."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, PIN_ROUNDS)
    return f"pbkdf2_sha256${PIN_ROUNDS}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    """Say whether a PIN matches a stored ``hash_pin`` value (constant-time)."""
    try:
        _scheme, rounds, salt, digest = stored.split("$")
        again = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(again.hex(), digest)
