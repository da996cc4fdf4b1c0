"""VoIP Communications' manual (seeds/003): its example send and its reply (a send_log file)."""

from __future__ import annotations

import json

from tests.manuals import sample

TEXT = "It is a SMS message"
TO = "12812345678"  #: the example's number
FROM = "17134567890"  #: the PHP example's sender (BULKSMS in its reply)
DELIVERY_DATE = "2019-10-01 00:00"
SEND_LOG = sample("voipcomms", "send_log.json")  #: the manual's reply, as written
SMSID = json.loads(SEND_LOG)["send_log"][0]["smsid"]
