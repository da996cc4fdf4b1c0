"""Api Smsclouds V1's manual (seeds/000): its example requests as written, with its own values.

Its sample replies are files under ``tests/vendors/fixtures/smsclouds/`` (``sample``).
"""

from __future__ import annotations

import json
from typing import Any

from tests.manuals import sample

USER = "johndoe@mycompany.com"  #: the manual's customer (user_reply.json)
PROMO_JSON = "Hello <+B+> receive this promo code <+C+> and get some free drinks"
JAVA = "Hello receive this promo code and get some free drinks <+B+>"
EMAIL_OK = '{\n  "message": "Email campaign created correctly."\n}'
VOICE_OK = '{\n  "message":"Voice campaign created correctly."\n}'
STATUS_EXAMPLE = {"message_ids": "consequatur", "campaign_ids": "consequatur"}  #: javascript / java


def reply(name: str) -> Any:
    """A sample reply of the manual, parsed."""
    return json.loads(sample("smsclouds", name))


# The manual's example requests, as written (with its own values).
PROMO = "Hello <+B+> receive this promo code and get some free drinks <+C+>"
BASH_SEND = {
    "message": PROMO,
    "cellphones": ["1234567890", "1234567891", "1234567892"],
    "combination": [
        {"names": ["John", "Joe", "Dave"], "field1": ["7SADAS6D786A", "7SADAS6D786B", "7SADAS6D786C"]}
    ],
    "country": "1",
    "allow_responses": True,
}
JSON_SEND = {
    "message": PROMO_JSON,
    "cellphones": ["4498987282", "4492799694"],
    "combination": [{"names": ["John", "Joe"], "field1": ["7SADAS6D786A", "7SADAS6D786B"]}],
    "country": "1",
    "allow_responses": True,
}
JS_SEND = {
    "message": "This is a text, hello",
    "cellphones": ["4498987282"],
    "country": 1,
    "encode": True,
    "allow_responses": True,
}
JAVA_SEND = {
    "message": JAVA,
    "cellphones": "4498987282",
    "country": 1,
    "combination": "5F2G5J5",
    "allow_responses": True,
    "encode": True,
}
RESPONSE_EXAMPLE = {
    "type": 9,
    "from": "1978-03-25",
    "to": "1978-03-25",
    "message_id": "quia",
    "campaign_id": 9,
    "cellphone": 9,
}
EMAIL = {
    "body": "Hi <+NAME+> <+FIELD1+>, please pay <+FIELD2+> <+FIELD3+> for order <+FIELD4+>",
    "subject": "pay order",
    "recipients": [
        {
            "email": "jack@example.com",
            "name": "Jack",
            "field1": "Doe",
            "field2": "$500",
            "field3": "USD",
            "field4": "8545fabb52cd",
        }
    ],
    "attachment": 20,
    "scheduledDate": "2018-08-07 14:26",
}
VOICE = {
    "type": 1,
    "campaign_name": "test api audio",
    "recipients": [{"cellphone": "1234445697"}],
    "audio": 22,
    "remittent": "9998886666",
    "transfer_num": "4499157710",
    "transfer_key": "5",
    "scheduledDate": "2018-08-14 12:50",
}
