"""Each simulator answers its manual's example send with a reply the adapter reads as it reads the
manual's own sample reply: the same outcome and code per recipient, and the same vendor ids where
the manual's ids are ones the simulator hands out too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dispatcher.sandbox.itcloud import ItCloudSim
from dispatcher.sandbox.ogangi import OgangiSim
from dispatcher.sandbox.skeleton import Simulator
from dispatcher.sandbox.smsclick import SmsclickSim
from dispatcher.sandbox.smsclouds import SmscloudsSim
from dispatcher.sandbox.voipcomms import VoipcommsSim
from dispatcher.vendors import adapter_for
from dispatcher.vendors.base import Account, Outgoing, Recipient, Result
from tests.conftest import BOGOTA_10AM
from tests.manuals import itcloud, ogangi, sample, smsclick, smsclouds, voipcomms
from tests.sandbox.harness import Box, Boxes


@dataclass(frozen=True)
class Example:
    """A manual's example send: who sends what to whom, and the manual's sample reply."""

    vendor: str
    sim: type[Simulator[Any]]
    at: datetime  #: when it is sent (inside the vendor's sending hours)
    customer: tuple[tuple[str, str], dict[str, Any]]  #: (key, secret), settings of the simulator's customer
    country: str
    params: dict[str, str]  #: the account's credentials
    recipients: list[Recipient]
    reply: str  #: the manual's sample reply
    same_ids: bool  #: whether the simulator hands out the manual's ids
    options: dict[str, Any] = field(default_factory=dict)


BASH = smsclouds.BASH_SEND
EXAMPLES = [
    Example(
        "itcloud", ItCloudSim, BOGOTA_10AM, ((itcloud.USER, itcloud.TOKEN), {"credit": 1}), "CO",
        {"user": itcloud.USER, "token": itcloud.TOKEN},
        [Recipient(i, "+" + gsm, itcloud.TEXT) for i, gsm in enumerate(itcloud.FOUR_GSM.split(","), 1)],
        itcloud.FOUR_REPLY, same_ids=True,
    ),
    Example(
        "smsclouds", SmscloudsSim, datetime(2026, 11, 23, 18, tzinfo=UTC), ((smsclouds.USER, "tok-manual"), {}),
        "MX", {"token": "tok-manual"},
        [
            Recipient(i, "+52" + cellphone, BASH["message"], {"name": name, "field1": field1})
            for i, (cellphone, name, field1) in enumerate(
                zip(BASH["cellphones"], *BASH["combination"][0].values(), strict=True), 1
            )
        ],
        sample("smsclouds", "message_reply.json"), same_ids=True,
    ),
    Example(
        "smsclick", SmsclickSim, datetime(2018, 1, 15, 18, tzinfo=UTC), (("mx-click", smsclick.APIKEY), {}), "MX",
        {"apikey": smsclick.APIKEY}, [Recipient(1, "+52" + smsclick.TELEFONO, smsclick.TEXT)], smsclick.SENT,
        same_ids=True,
    ),
    Example(
        "voipcomms", VoipcommsSim, datetime(2019, 9, 30, 17, tzinfo=UTC), (("AK-manual", "pw-manual"), {}), "US",
        {"api_key": "AK-manual", "api_password": "pw-manual"},
        [Recipient(1, "+" + voipcomms.TO, voipcomms.TEXT)], voipcomms.SEND_LOG, same_ids=False,
        options={"delivery_date": voipcomms.DELIVERY_DATE},
    ),
    Example(
        "ogangi", OgangiSim, datetime(2013, 9, 17, 14, 43, tzinfo=UTC),
        ((ogangi.PUBLIC_KEY, ogangi.PRIVATE_KEY), {"instance_id": ogangi.INSTANCE, "carriers": ("carrierName",)}),
        "VE",
        {"instance_id": ogangi.INSTANCE, "public_key": ogangi.PUBLIC_KEY, "private_key": ogangi.PRIVATE_KEY,
         "from": ogangi.LONG},
        [Recipient(1, "+" + ogangi.MOBILE, ogangi.TEXT)], sample("ogangi", "sendSMS.xml"), same_ids=False,
        options={"carrier": "carrierName"},
    ),
]  # fmt: skip


def read(results: list[Result], ids: bool) -> list[tuple[Any, ...]]:
    """What the adapter made of a reply: outcome and code per recipient, and the ids if asked."""
    return [(r.message_id, r.outcome, r.code, r.vendor_id if ids else r.vendor_id is not None) for r in results]


@pytest.fixture
def start(boxes: Boxes) -> Callable[[Example], Box]:
    def run(example: Example) -> Box:
        box = boxes.start(example.sim, example.at)
        (key, secret), settings = example.customer
        box.sim.add_customer(key, secret, **settings)
        return box

    return run


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.vendor)
def test_the_simulator_answers_the_manual_example_as_the_manual_does(
    start: Callable[[Example], Box], example: Example
) -> None:
    # Given the simulator with the manual's customer, and the adapter's requests for the example
    box = start(example)
    adapter = adapter_for(example.vendor)
    account = Account("manual", example.vendor, box.server.url(example.vendor), example.country, example.params)
    requests = adapter.build_send(account, Outgoing(example.recipients, adapter.validate_options(example.options)))
    simulated: list[Result] = []
    manual: list[Result] = []
    for sent in requests:
        # When the simulator answers them, and the manual's sample reply stands beside its answer
        simulated += adapter.parse_send(account, sent, httpx.Client(timeout=5.0).send(sent.request))
        manual += adapter.parse_send(account, sent, httpx.Response(200, text=example.reply, request=sent.request))
    # Then the adapter reads both the same way, one result per recipient
    assert read(simulated, example.same_ids) == read(manual, example.same_ids)
    assert sorted(r.message_id for r in simulated) == [r.message_id for r in example.recipients]
