"""What every adapter in the registry must satisfy, checked the same way for each."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from dispatcher.config import parse_accounts
from dispatcher.sandbox.world import SECRETS, build_world, simulator_of
from dispatcher.transport import Transport
from dispatcher.vendors import VENDOR_KEYS, VENDORS, abilities_of
from dispatcher.vendors.abilities import Abilities
from dispatcher.vendors.base import CodeRule, Limits, Outcome, Outgoing, Recipient
from tests.conftest import BOGOTA_10AM, FakeClock

REQUIRED = ("key", "default_base_url", "codes", "limits", "validate_options", "text_limit", "check_recipient",
            "build_send", "parse_send")  # fmt: skip


def test_the_registry_holds_every_vendor_an_account_may_name() -> None:
    assert set(VENDORS) == set(VENDOR_KEYS)


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_every_vendor_has_a_simulator_with_a_sandbox_customer_of_its_own(vendor: str) -> None:
    simulator = simulator_of(vendor)
    assert simulator.key == vendor
    customer = simulator.sandbox
    # The account's secret reaches the dispatcher by its variable, never written in the table
    assert f"${{{customer.secret_env}}}" in customer.fields.values()
    assert customer.secret not in customer.fields.values()
    assert customer.sample.count > 0


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_an_adapter_declares_its_abilities_as_data(vendor: str) -> None:
    abilities = abilities_of(vendor)
    assert isinstance(abilities, Abilities)
    credentials = abilities.credentials
    assert credentials.required and set(credentials.secret) & set(credentials.required)
    assert len(abilities.default_country) == 2 and abilities.default_country.isupper()


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_an_adapter_declares_its_limits_and_maps_every_code(vendor: str) -> None:
    adapter = VENDORS[vendor]
    for name in REQUIRED:
        assert hasattr(adapter, name), f"{vendor} has no {name}"
    assert adapter.key == vendor
    limits = adapter.limits
    assert isinstance(limits, Limits)
    assert 1 <= limits.batch_size <= limits.hard_max_recipients
    assert limits.min_interval >= 0 and limits.max_text_chars > 0
    assert adapter.codes, f"{vendor} maps no code"
    for code, rule in adapter.codes.items():
        assert isinstance(rule, CodeRule) and isinstance(rule.outcome, Outcome) and rule.meaning, code
    assert adapter.validate_options({}) is not None
    with pytest.raises(ValueError):
        adapter.validate_options({"no-such-option": 1})


@pytest.fixture(scope="module")
def world() -> Any:
    world = build_world(FakeClock(BOGOTA_10AM))
    yield world
    world.stop()


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_an_adapter_round_trips_a_batch_with_its_sandbox(vendor: str, world: Any) -> None:
    # Given the vendor's sandbox customer and the first two numbers of its sample job
    accounts = parse_accounts(tomllib.loads(world.accounts_toml()), SECRETS)
    account = next(c.account for c in accounts.values() if c.vendor == vendor)
    adapter = VENDORS[vendor]
    sample = simulator_of(vendor).sandbox.sample.job(account.key, 2)
    phones = [r["phone"] for r in sample["recipients"]]
    recipients = [Recipient(i + 1, phone, "Prueba") for i, phone in enumerate(phones)]
    assert all(adapter.check_recipient(r, {}) is None for r in recipients)
    # When the adapter's requests go to the sandbox and its replies come back
    transport = Transport()
    results = []
    for sent in adapter.build_send(account, Outgoing(recipients, adapter.validate_options({}))):
        results += adapter.parse_send(account, sent, transport.send(sent.request, 2.0, 5.0))
    # Then every recipient is accepted under its own vendor id, and the sandbox sent each once
    assert sorted(r.message_id for r in results) == [1, 2]
    assert all(r.outcome is Outcome.ACCEPTED for r in results), results
    assert len({r.vendor_id for r in results}) == 2 and all(r.vendor_id for r in results)
    assert all(world.ledger.sends[phone] == 1 for phone in phones)


def _subclasses(cls: type) -> list[type]:
    return [cls] + [sub for child in cls.__subclasses__() for sub in _subclasses(child)]


def test_every_vendor_error_names_an_outcome_the_sender_knows() -> None:
    from dispatcher.errors import VendorError
    from dispatcher.vendors.base import Outcome

    assert {cls.__name__: Outcome(cls.outcome) for cls in _subclasses(VendorError)} == {
        "VendorError": Outcome.REJECTED,
        "RequestNotSent": Outcome.DEFER,
        "VendorRetryable": Outcome.RETRY,
        "VendorBusy": Outcome.DEFER,
        "VendorOutcomeUnknown": Outcome.UNKNOWN,
        "VendorRejectedRequest": Outcome.REJECTED,
        "VendorAccountError": Outcome.PAUSE_ACCOUNT,
    }
