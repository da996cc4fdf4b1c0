"""B2, a one-number vendor: 5,000 recipients on the SMSClick simulator (one number a request)
answering after 0.2 s, 2 worker processes; beside it, a bare async httpx loop with as many
requests in flight as the account allows (``policy.max_in_flight``, 1 where the account has no
such setting). Target: project ÷ loop >= 0.7.

Both sides are rates over the send phase (first request to the vendor → last row sent), each
stopped after ``--cap`` seconds: with one request in flight at 0.2 s, 5,000 recipients take
over 1,000 s, more than the whole suite's budget, and a rate over the first half-minute is the
same rate. The job is canceled at the cap before the loop runs, so the two never overlap.

    python -m bench.b2_one_number [--recipients 5000] [--latency 0.2] [--cap 30] [--repeat 3]
                                  [--max-in-flight N  (written to the account; needs the setting)]
"""

from __future__ import annotations

import argparse
import time

from bench.common import bare_async, fmt, phones, publish, stack, summarise
from dispatcher.vendors.base import Recipient

NAME = "B2 one-number vendor"
VENDOR = "smsclick"
TEXT = "Aviso: su pedido va en camino"


def run_once(s, recipients: int, start: int, cap: float, in_flight: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    numbers = phones(VENDOR, recipients, start)
    s.vendor.reset()
    started = time.perf_counter()
    mono = time.monotonic()
    job_id = s.submit_cli({"account": s.vendor.account(VENDOR), "text": TEXT, "recipients": numbers})
    submitted = time.perf_counter() - started
    # The cap counts from the first request the vendor sees.
    while not s.vendor.count(VENDOR) and time.perf_counter() - started < cap + submitted:
        time.sleep(0.05)
    sends = s.vendor.sends(VENDOR, 0)
    first = (sends[0].at - mono) if sends else submitted
    elapsed, sent = s.run_until(job_id, recipients, first + cap, started)
    if sent < recipients:
        s.cancel(job_id)
    duplicates = len(s.vendor.duplicates())
    project = sent / (elapsed - first)
    s.vendor.reset()
    seconds, done = bare_async(
        s.vendor, VENDOR, [Recipient(i, p, TEXT) for i, p in enumerate(numbers)], in_flight, cap
    )
    loop = done / seconds
    return {"ratio": project / loop, "project/s": project, "loop/s": loop, "sent": sent, "duplicates": duplicates}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=5_000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cap", type=float, default=30, help="seconds each side runs at most")
    parser.add_argument("--max-in-flight", type=int, help="set the account's max_in_flight (where supported)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    runs = []
    settings = {}
    if args.max_in_flight:
        settings = {"mx-smsclick": {"max_in_flight": args.max_in_flight}}
    with stack(latency=args.latency, workers_n=args.workers, account_settings=settings) as s:
        policy = s.vendor.config(VENDOR).policy
        in_flight = int(getattr(policy, "max_in_flight", 1))
        for i in range(args.repeat):
            runs.append(run_once(s, args.recipients, i * args.recipients, args.cap, in_flight))
            print(f"{NAME} run {i + 1}: {fmt(runs[-1])}", flush=True)
    figures = {
        "recipients": args.recipients,
        "latency s": args.latency,
        "workers": args.workers,
        "in flight": in_flight,
        "cap s": args.cap,
        **summarise(runs, ["ratio", "project/s", "loop/s"]),
        "duplicates": max(r["duplicates"] for r in runs),
        "target": "ratio >= 0.7",
    }
    publish(NAME, figures, args.no_record)
    return figures


if __name__ == "__main__":
    main()
