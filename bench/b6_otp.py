"""B6, OTP latency under load: while a bulk campaign saturates an account, OTP jobs (one
recipient, ``priority = "otp"``) are dropped on the Celery door one every ``--every`` seconds (on
IT Cloud one every 5 s at least: OTPs faster than its slot queue behind one another); each one's
latency runs from its submit to the vendor's receipt of the request that carries its number (the
simulator's request log). p50 and p99 over all OTPs. Targets: p99 <= 1 s on smsclouds (no pause;
the simulator answers after 0.2 s), p99 <= 4 s (two slots) on IT Cloud.

    python -m bench.b6_otp [--otps 10] [--every 1.5] [--workers 2] [--vendors smsclouds,itcloud]
"""

from __future__ import annotations

import argparse
import time

from bench.common import percentile, phones, publish, stack

NAME = "B6 OTP latency"
TEXT = "Aviso: su pedido va en camino"
OTP_TEXT = "Su codigo es 482913"
#: vendor -> (bulk recipients that keep the account busy longer than the OTPs take, p99 target s)
CASES = {"smsclouds": (60_000, 1.0), "itcloud": (12_000, 4.0)}
#: vendor -> least seconds between two OTP jobs: on IT Cloud each OTP job is a request of its own
#: and one request leaves every 2 s, so OTPs coming faster than that queue behind one another
#: whatever the lanes do; one every 2.5 slots measures how an OTP overtakes the bulk campaign
SPACING = {"itcloud": 5.0}
#: OTP phones sit far from the bulk's
OTP_START = 9_000_000


def arrival(s, vendor: str, phone: str, since: int) -> float | None:  # type: ignore[no-untyped-def]
    """When (monotonic) the vendor first got a send request carrying ``phone``."""
    digits = phone[-10:]
    for seen in s.vendor.sends(vendor, since):
        if digits in seen.query or digits.encode() in seen.body:
            return float(seen.at)
    return None


def run_vendor(s, vendor: str, otps: int, every: float, timeout: float) -> list[float]:  # type: ignore[no-untyped-def]
    """Latencies of ``otps`` OTP jobs sent while a bulk job saturates ``vendor``'s account."""
    bulk, _ = CASES[vendor]
    s.vendor.reset()
    account = s.vendor.account(vendor)
    bulk_id = s.submit_cli({"account": account, "text": TEXT, "recipients": phones(vendor, bulk)})
    deadline = time.monotonic() + timeout
    while s.vendor.count(vendor) < 2 and time.monotonic() < deadline:  # the campaign is under way
        time.sleep(0.1)
    submitted: dict[str, float] = {}
    for k in range(otps):
        phone = phones(vendor, 1, OTP_START + k)[0]
        submitted[phone] = time.monotonic()
        s.submit_celery({"account": account, "text": OTP_TEXT, "recipients": [phone], "priority": "otp"})
        time.sleep(every)
    latencies: dict[str, float] = {}
    while len(latencies) < otps and time.monotonic() < deadline:
        for phone, at in submitted.items():
            if phone not in latencies:
                got = arrival(s, vendor, phone, 0)
                if got is not None:
                    latencies[phone] = got - at
        time.sleep(0.2)
    still_bulk = s.states(bulk_id).get("pending", 0)
    s.cancel(bulk_id)
    missing = otps - len(latencies)
    if missing:
        print(f"{NAME} {vendor}: {missing} OTPs not at the vendor after {timeout:.0f} s", flush=True)
    if not still_bulk:
        print(f"{NAME} {vendor}: the bulk job ended before the last OTP; make it bigger", flush=True)
    return list(latencies.values()) + [float("inf")] * missing


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--otps", type=int, default=10, help="OTP jobs per vendor")
    parser.add_argument("--every", type=float, default=1.5, help="seconds between two OTP jobs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.2, help="the vendor's answer time (s)")
    parser.add_argument("--vendors", default=",".join(CASES))
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    figures: dict[str, object] = {"workers": args.workers, "latency s": args.latency, "otps": args.otps}
    with stack(latency=args.latency, workers_n=args.workers) as s:
        for vendor in args.vendors.split(","):
            every = max(args.every, SPACING.get(vendor, 0.0))
            latencies = run_vendor(s, vendor, args.otps, every, args.timeout)
            figures[f"{vendor} p50 s"] = percentile(latencies, 50)
            figures[f"{vendor} p99 s"] = percentile(latencies, 99)
            figures[f"{vendor} target p99 s"] = CASES[vendor][1]
            print(f"{NAME} {vendor}: {sorted(round(x, 2) for x in latencies)}", flush=True)
    publish(NAME, figures, args.no_record)
    return figures


if __name__ == "__main__":
    main()
