"""Vendor adapters: one module or package per vendor, listed in an explicit registry.

This registry is the one place outside a vendor's own package that names it.
"""

from __future__ import annotations

from dispatcher.vendors import itcloud, ogangi, smsclick, smsclouds, voipcomms
from dispatcher.vendors.abilities import Abilities
from dispatcher.vendors.base import Adapter

#: every vendor key a configured account may name
VENDOR_KEYS = ("smsclouds", "itcloud", "smsclick", "voipcomms", "ogangi")

#: vendor key -> its adapter; the type check holds each to the ``Adapter`` protocol in ``base``
VENDORS: dict[str, Adapter] = {
    smsclouds.key: smsclouds,
    itcloud.key: itcloud,
    smsclick.key: smsclick,
    voipcomms.key: voipcomms,
    ogangi.key: ogangi,
}


def adapter_for(vendor: str) -> Adapter:
    """Return the adapter of a vendor key, or raise KeyError naming what is available."""
    try:
        return VENDORS[vendor]
    except KeyError:
        raise KeyError(f"no adapter for vendor {vendor!r}; available: {', '.join(sorted(VENDORS))}") from None


def abilities_of(vendor: str) -> Abilities:
    """Return what a vendor declares beyond sending: credentials, country, queries."""
    return adapter_for(vendor).ABILITIES
