"""IT Cloud on the wire: its code table, limits and numbers.

Numbers travel as 12 digits with the country prefix (``GSM``); a NANP number is written 01 + 10
digits. A code above 0 is an acceptance id; the others are in ``codes``.
"""

from __future__ import annotations

from dispatcher.vendors import base

key = "itcloud"

codes: dict[str, base.CodeRule] = {
    "-1": base.CodeRule(base.Outcome.PAUSE_ACCOUNT, "authentication failed: bad user or token"),
    "-2": base.CodeRule(base.Outcome.WAIT_WINDOW, "outside the hours the CRC allows (08:00-21:00)"),
    "-3": base.CodeRule(base.Outcome.PAUSE_ACCOUNT, "no balance left on the account"),
    "-4": base.CodeRule(base.Outcome.REJECTED, "bad number: not the expected 12 digits"),
    "-5": base.CodeRule(base.Outcome.REJECTED, "text empty or over 765 characters"),
    # The manual: "Este SMS no tiene cobro ni enviado": come back later, no attempt spent.
    "-6": base.CodeRule(base.Outcome.DEFER, "system in maintenance; nothing sent or charged"),
    # Our request was too big, never the numbers' fault: they go again in requests of at most
    # ``limits.batch_size`` (build_send), without spending an attempt.
    # A planning fault, never the numbers': they go again in requests half the size.
    "-7": base.CodeRule(base.Outcome.DEFER, "more than 5000 numbers in one request", split=True),
    # Typically the person answered SALIR: the account stops sending to this number.
    "-8": base.CodeRule(base.Outcome.REJECTED, "number on the block list", opt_out=True),
    "-9": base.CodeRule(base.Outcome.REJECTED, "text rejected for its content"),
    "-10": base.CodeRule(base.Outcome.REJECTED, "text carries a link the account may not send"),
    "-11": base.CodeRule(base.Outcome.REJECTED, "bad metodo_envio: must be 1via, 2via or flash"),
    "0": base.CodeRule(base.Outcome.REJECTED, "unknown operator for this number"),
}

limits = base.Limits(batch_size=1000, hard_max_recipients=5000, min_interval=2.0, max_text_chars=765)


def vendor_number(phone: str) -> str:
    """E.164 to IT Cloud's 12 digits: drop the '+'; NANP numbers are written 01 + 10 digits."""
    digits = phone.lstrip("+")
    return "0" + digits if digits.startswith("1") else digits
