"""Ogangi's manual (seeds/004): the workspace of its examples, its signed sendSMS call, its texts.

Its sample replies are XML files under ``tests/vendors/fixtures/ogangi/`` (``sample``).
"""

from __future__ import annotations

INSTANCE, PUBLIC_KEY, PRIVATE_KEY = "8", "d1F2T3Y4N56", "FBF3-4310-909C-C4BBC26F886F"
CLIENT_ID = "As223sdadq8d8287v5v"
LONG = "19893653744"  #: the long code the examples send from
TEXT, TEXT64 = "OGANGI TEST MESSAGE", "T0dBTkdJIFRFU1QgTUVTU0FHRQ=="
MOBILE, MOBILE64 = "13056708084", "MTMwNTY3MDgwODQ="
MANUAL_ID = "-8174720676710228700"  #: the message id of the sendSMS reply
#: the manual's sendSMS call under the API root, signed by hand: HMAC-SHA256 under the private key
#: of 8/carrierName/19893653744/base64("13056708084")/base64("OGANGI TEST MESSAGE")
SEND_SMS_CALL = (
    f"tools/sendSMS/{INSTANCE}/carrierName/{LONG}/{MOBILE64}/{TEXT64}/{PUBLIC_KEY}/"
    "8e0d2311168efd743af1154e07bbee0e7e8de02755bbf73564c5e9c788f242fc"
)
#: the wiki's signature example: (signed values, signature under PRIVATE_KEY)
SIGNATURE_EXAMPLE = ("8/peter/peterpassword", "954221dc7ba612b2633c0ff1e0f5c4058f2bf982902faada38c78c4f044f5ef4")
PIN_TEXT = "Tu código es"
FIRE_TEXT = "Test qa API fireMessage."
