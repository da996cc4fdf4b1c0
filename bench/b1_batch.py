"""B1, a batch vendor: 20,000 recipients, one text, on the smsclouds simulator (500 numbers a
request) answering after 0.2 s, 2 worker processes, from ``dispatcher submit`` to every row ``sent``;
beside it, a bare sequential httpx loop posting the same requests (built by the adapter) to the
same simulator. Target: project ÷ loop >= 0.8.

The project's job stops at ``--cap`` seconds (its rate is then the rows sent by the cap over
the cap; the job is canceled before the loop runs).

    python -m bench.b1_batch [--recipients 20000] [--latency 0.2] [--workers 2] [--cap 900] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from bench.common import bare_sequential, fmt, phones, publish, stack, summarise
from dispatcher.vendors.base import Recipient

NAME = "B1 batch vendor"
VENDOR = "smsclouds"
TEXT = "Aviso: su pedido va en camino"


def run_once(s, recipients: int, start: int, cap: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """One job through the project (stopped at ``cap`` s), then the same requests through the bare loop."""
    numbers = phones(VENDOR, recipients, start)
    s.vendor.reset()
    started = time.perf_counter()
    mono = time.monotonic()
    job_id = s.submit_cli({"account": s.vendor.account(VENDOR), "text": TEXT, "recipients": numbers})
    stored = time.perf_counter() - started
    took, sent = s.run_until(job_id, recipients, cap, started)
    if sent < recipients:
        s.cancel(job_id)
    sends = s.vendor.sends(VENDOR)
    first = sends[0].at - mono if sends else 0.0
    duplicates = len(s.vendor.duplicates())
    s.vendor.reset()
    ceiling = bare_sequential(s.vendor, VENDOR, [Recipient(i, p, TEXT) for i, p in enumerate(numbers)])
    loop = recipients / ceiling
    return {
        "ratio": sent / took / loop,
        "send-phase ratio": sent / (took - first) / loop,
        "project/s": sent / took,
        "loop/s": loop,
        "sent": sent,
        "submit s": stored,
        "requests": len(sends),
        "duplicates": duplicates,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cap", type=float, default=900, help="seconds the project's job runs at most")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    runs = []
    with stack(latency=args.latency, workers_n=args.workers) as s:
        for i in range(args.repeat):
            runs.append(run_once(s, args.recipients, i * args.recipients, args.cap))
            print(f"{NAME} run {i + 1}: {fmt(runs[-1])}", flush=True)
    figures = {
        "recipients": args.recipients,
        "latency s": args.latency,
        "workers": args.workers,
        "cap s": args.cap,
        **summarise(runs, ["ratio", "send-phase ratio", "project/s", "loop/s", "submit s", "sent"]),
        "duplicates": max(r["duplicates"] for r in runs),
        "target": "ratio >= 0.8",
    }
    publish(NAME, figures, args.no_record)
    return figures


if __name__ == "__main__":
    main()
