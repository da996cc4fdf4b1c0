"""Vendor adapters: one module per vendor, listed in an explicit registry."""

from __future__ import annotations

from types import ModuleType

from dispatcher.vendors import itcloud, ogangi, smsclick, smsclouds, voipcomms
from dispatcher.vendors.abilities import Abilities

#: every vendor key a configured account may name
VENDOR_KEYS = ("smsclouds", "itcloud", "smsclick", "voipcomms", "ogangi")

#: vendor key -> adapter module (the ``Adapter`` protocol in ``base``)
VENDORS: dict[str, ModuleType] = {
    smsclouds.key: smsclouds,
    itcloud.key: itcloud,
    smsclick.key: smsclick,
    voipcomms.key: voipcomms,
    ogangi.key: ogangi,
}


def adapter_for(vendor: str) -> ModuleType:
    """Return the adapter of a vendor key, or raise KeyError naming what is available."""
    try:
        return VENDORS[vendor]
    except KeyError:
        raise KeyError(f"no adapter for vendor {vendor!r}; available: {', '.join(sorted(VENDORS))}") from None


def abilities_of(vendor: str) -> Abilities:
    """Return what a vendor declares beyond sending: credentials, country, queries."""
    abilities: Abilities = adapter_for(vendor).ABILITIES
    return abilities
