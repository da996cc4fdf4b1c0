"""Every vendor's simulator on one loopback server, each with its one customer, and the accounts
file that points the dispatcher at them. The demo, the ``dispatcher sandbox`` command and the
end-to-end tests all start here.

A simulator for each vendor of the registry (``dispatcher.vendors.VENDORS``) is the ``SIMULATOR``
of ``dispatcher/sandbox/<key>.py``; its customer, account and sample job are its own ``sandbox``
declaration, so a new vendor needs no line here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from dispatcher.clock import SystemClock
from dispatcher.sandbox.core import Faults, Ledger, SandboxServer
from dispatcher.sandbox.messages import Progress, PushQueue
from dispatcher.sandbox.ogangi import OGANGI_CODE
from dispatcher.sandbox.samples import SampleJob
from dispatcher.sandbox.skeleton import Simulator
from dispatcher.sandbox.smsclick import SMSCLICK_RULE
from dispatcher.sandbox.voipcomms import VOIP_NUMBER
from dispatcher.vendors import VENDORS

__all__ = [
    "OGANGI_CODE",
    "SMSCLICK_RULE",
    "VOIP_NUMBER",
    "SampleJob",
    "SandboxWorld",
    "build_world",
    "sample_jobs",
]


def simulator_of(vendor: str) -> type[Simulator[Any]]:
    """The simulator class of a vendor: the ``SIMULATOR`` of ``dispatcher/sandbox/<vendor>.py``."""
    simulator: type[Simulator[Any]] = import_module(f"dispatcher.sandbox.{vendor}").SIMULATOR
    return simulator


#: vendor key -> its simulator, for every vendor of the registry
SIMULATORS = {vendor: simulator_of(vendor) for vendor in VENDORS}
#: the sandbox customers' secrets, handed to the dispatcher through the environment
SECRETS = {
    **{sim.sandbox.secret_env: sim.sandbox.secret for sim in SIMULATORS.values()},
    "SANDBOX_WEBHOOK_SECRET": "sandbox-webhook-secret-3f9c2a",
}
#: account key of each vendor's sandbox customer
ACCOUNT_KEYS = {vendor: sim.sandbox.account for vendor, sim in SIMULATORS.items()}
#: poll intervals of the sandbox customers, in seconds
POLL_EVERY = {"status_poll_seconds": 5, "reply_poll_seconds": 5}


def sample_jobs(vendors: Iterable[str] | None = None) -> Iterator[tuple[str, SampleJob]]:
    """(account key, sample job) of each sandbox customer, of every vendor or those given."""
    for vendor in SIMULATORS if vendors is None else vendors:
        customer = SIMULATORS[vendor].sandbox
        yield customer.account, customer.sample


@dataclass
class SandboxWorld:
    """The running simulators and what the dispatcher needs to reach them."""

    server: SandboxServer
    ledger: Ledger
    pushes: PushQueue
    sims: dict[str, Simulator[Any]] = field(default_factory=dict)

    def url(self, vendor: str) -> str:
        return self.server.url(vendor)

    def sample_jobs(self) -> Iterator[tuple[str, SampleJob]]:
        """(account key, sample job) of the customer of every running simulator."""
        return sample_jobs(self.sims)

    def accounts_toml(self, **extra: Mapping[str, Any]) -> str:
        """The accounts file of the sandbox customers (secrets as ${VAR} references)."""
        tables = {sim.sandbox.account: sim.sandbox_account(self.url(key)) for key, sim in self.sims.items()}
        out = []
        for key, spec in tables.items():
            # Simulated messages move on within seconds: poll them every few.
            spec = {
                **spec,
                "base_url": self.url(spec["vendor"]),
                "webhook_secret": "${SANDBOX_WEBHOOK_SECRET}",
                **POLL_EVERY,
                **extra.get(key, {}),
            }
            out.append(f"[accounts.{key}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in spec.items()))
        return "\n".join(out)

    def stop(self) -> None:
        self.pushes.stop()
        self.server.stop()


def build_world(
    clock: SystemClock,
    progress: Progress | None = None,
    faults: Mapping[str, Faults] | None = None,
    webhook_url: str | None = None,
    port: int = 0,
    host: str = "127.0.0.1",
    public_url: str | None = None,
) -> SandboxWorld:
    """Start every vendor's simulator with its customer; pushes go to ``webhook_url``/hooks/<account>/<secret>."""
    ledger, pushes = Ledger(), PushQueue(clock)
    faults = faults or {}

    def hook(vendor: str) -> str:
        # The dispatcher's webhook app takes pushes at /hooks/<account key>/<webhook secret>.
        secret = SECRETS["SANDBOX_WEBHOOK_SECRET"]
        return f"{webhook_url.rstrip('/')}/hooks/{ACCOUNT_KEYS[vendor]}/{secret}" if webhook_url else ""

    def shared(vendor: str) -> dict[str, Any]:
        return {"faults": faults.get(vendor), "progress": progress, "pushes": pushes}

    sims: dict[str, Simulator[Any]] = {}
    for vendor, simulator in SIMULATORS.items():
        sims[vendor] = simulator(ledger, clock, **shared(vendor))
        sims[vendor].join_sandbox(hook(vendor))
    server = SandboxServer(sims, host=host, port=port, public_url=public_url).start()
    pushes.start()
    return SandboxWorld(server, ledger, pushes, sims)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
