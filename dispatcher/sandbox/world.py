"""The five simulated vendors on one loopback server, each with one customer, and the accounts
file that points the dispatcher at them. The demo, the ``dispatcher sandbox`` command and the
end-to-end tests all start here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.clock import SystemClock
from dispatcher.sandbox.core import Faults, Ledger, SandboxServer
from dispatcher.sandbox.itcloud import ItCloudSim
from dispatcher.sandbox.messages import Progress, PushQueue
from dispatcher.sandbox.ogangi import OgangiSim
from dispatcher.sandbox.skeleton import Simulator
from dispatcher.sandbox.smsclick import SmsclickSim
from dispatcher.sandbox.smsclouds import SmscloudsSim
from dispatcher.sandbox.voipcomms import VoipcommsSim

#: the sandbox customers' secrets, handed to the dispatcher through the environment
SECRETS = {
    "SANDBOX_ITCLOUD_TOKEN": "sandbox-itcloud-token",
    "SANDBOX_SMSCLOUDS_TOKEN": "sandbox-smsclouds-token",
    "SANDBOX_SMSCLICK_APIKEY": "sandbox-smsclick-apikey",
    "SANDBOX_VOIPCOMMS_PASSWORD": "sandbox-voipcomms-password",
    "SANDBOX_OGANGI_PRIVATE_KEY": "sandbox-ogangi-private-key",
    "SANDBOX_WEBHOOK_SECRET": "sandbox-webhook-secret-3f9c2a",
}
#: account key of each vendor's sandbox customer
ACCOUNT_KEYS = {
    "itcloud": "co-itcloud",
    "smsclouds": "mx-smsclouds",
    "smsclick": "mx-smsclick",
    "voipcomms": "us-voipcomms",
    "ogangi": "ve-ogangi",
}
#: the interactive rule SMSClick's sandbox customer has (two-way messages)
SMSCLICK_RULE = "77"
#: poll intervals of the sandbox customers, in seconds
POLL_EVERY = {"status_poll_seconds": 5, "reply_poll_seconds": 5}
#: voipcomms' and Ogangi's sender numbers of the sandbox customer
VOIP_NUMBER, OGANGI_CODE = "17134567890", "19893653744"


@dataclass(frozen=True)
class SampleJob:
    """A job a sandbox customer takes whole: phones of its country, a text, its vendor's options."""

    prefix: str  #: country code and area every phone starts with
    text: str  #: a template; every recipient brings ``shop``
    count: int  #: recipients of the demo's job
    options: Mapping[str, str] = field(default_factory=dict)
    length: int = 13  #: characters of a whole E.164 number of the country, "+" included

    def job(self, account: str, count: int | None = None, first: int = 0) -> dict[str, Any]:
        """The job for ``account``: ``count`` recipients (the sample's by default), numbered from ``first``."""
        width = self.length - len(self.prefix)
        numbers = range(first, first + (self.count if count is None else count))
        # Numbers past the country's width wrap around: a long-running producer stays valid.
        recipients = [
            {"phone": f"{self.prefix}{n % 10**width:0{width}d}", "vars": {"shop": "Tienda Sol"}} for n in numbers
        ]
        return {"account": account, "text": self.text, "recipients": recipients, "options": dict(self.options)}


#: each vendor's sandbox customer's sample job, which the demo and the producer send
SAMPLE_JOBS = {
    "itcloud": SampleJob("+57300", "{shop}: su pedido va en camino", 2500, {"metodo_envio": "2via"}),
    "smsclouds": SampleJob("+52449", "{shop}: su cita es manana a las 9", 300),
    "smsclick": SampleJob(
        "+52552", "{shop}: responda SI para confirmar", 40, {"ID_REGLA_INTERACTIVA": SMSCLICK_RULE}
    ),
    "voipcomms": SampleJob("+12812", "{shop}: your order has shipped", 200, {"from": VOIP_NUMBER}, length=12),
    "ogangi": SampleJob("+58414", "{shop}: su saldo fue actualizado", 40, {"from": OGANGI_CODE}),
}


def sample_jobs(vendors: Iterable[str] | None = None) -> Iterator[tuple[str, SampleJob]]:
    """(account key, sample job) of each sandbox customer, of every vendor or those given."""
    for vendor in ACCOUNT_KEYS if vendors is None else vendors:
        yield ACCOUNT_KEYS[vendor], SAMPLE_JOBS[vendor]


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
        """The accounts file of the five sandbox customers (secrets as ${VAR} references)."""
        # fmt: off
        tables: dict[str, dict[str, Any]] = {
            "co-itcloud": {"vendor": "itcloud", "user": "demo@example.com", "token": "${SANDBOX_ITCLOUD_TOKEN}",
                           "balance_url": self.url("itcloud") + "/query.php"},
            "mx-smsclouds": {"vendor": "smsclouds", "token": "${SANDBOX_SMSCLOUDS_TOKEN}"},
            "mx-smsclick": {"vendor": "smsclick", "apikey": "${SANDBOX_SMSCLICK_APIKEY}"},
            "us-voipcomms": {"vendor": "voipcomms", "api_key": "sandbox-voip",
                             "api_password": "${SANDBOX_VOIPCOMMS_PASSWORD}"},
            "ve-ogangi": {"vendor": "ogangi", "instance_id": "8", "public_key": "sandbox-public",
                          "private_key": "${SANDBOX_OGANGI_PRIVATE_KEY}", "from": OGANGI_CODE},
        }
        # fmt: on
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
    """Start the five simulators with one customer each; pushes go to ``webhook_url``/hooks/<account>/<secret>."""
    ledger, pushes = Ledger(), PushQueue(clock)
    faults = faults or {}

    def hook(vendor: str) -> str:
        # The dispatcher's webhook app takes pushes at /hooks/<account key>/<webhook secret>.
        secret = SECRETS["SANDBOX_WEBHOOK_SECRET"]
        return f"{webhook_url.rstrip('/')}/hooks/{ACCOUNT_KEYS[vendor]}/{secret}" if webhook_url else ""

    def shared(vendor: str) -> dict[str, Any]:
        return {"faults": faults.get(vendor), "progress": progress, "pushes": pushes}

    itcloud = ItCloudSim(ledger, clock, **shared("itcloud"))
    smsclouds = SmscloudsSim(ledger, clock, **shared("smsclouds"))
    smsclick = SmsclickSim(ledger, clock, **shared("smsclick"))
    voipcomms = VoipcommsSim(ledger, clock, **shared("voipcomms"))
    ogangi = OgangiSim(ledger, clock, **shared("ogangi"))
    credit = 1_000_000
    itcloud.add_customer("demo@example.com", SECRETS["SANDBOX_ITCLOUD_TOKEN"], callback_url=hook("itcloud"))
    smsclouds.add_customer("demo@example.com", SECRETS["SANDBOX_SMSCLOUDS_TOKEN"], credit, hook("smsclouds"))
    smsclick.add_customer("demo", SECRETS["SANDBOX_SMSCLICK_APIKEY"], credit, rules=(SMSCLICK_RULE,))
    voipcomms.add_customer("sandbox-voip", SECRETS["SANDBOX_VOIPCOMMS_PASSWORD"], "10000", hook("voipcomms"))
    voipcomms.add_number("sandbox-voip", VOIP_NUMBER)
    ogangi.add_customer("sandbox-public", SECRETS["SANDBOX_OGANGI_PRIVATE_KEY"], callback_url=hook("ogangi"),
                        instance_id="8", codes=(OGANGI_CODE,))  # fmt: skip
    sims: dict[str, Simulator[Any]] = {sim.key: sim for sim in (itcloud, smsclouds, smsclick, voipcomms, ogangi)}
    server = SandboxServer(sims, host=host, port=port, public_url=public_url).start()
    pushes.start()
    return SandboxWorld(server, ledger, pushes, sims)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
