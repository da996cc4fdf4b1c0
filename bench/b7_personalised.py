"""B7, personalised text: 20,000 recipients with ``Hola {name}, su codigo es {code}`` on the
smsclouds simulator (answering at once: the project is what is timed), 2 worker processes,
from ``dispatcher submit`` to every row ``sent``, ÷ the same job with one shared text, in the
same run. Target: >= 0.5.

Each job stops at ``--cap`` seconds; its rate is then the rows sent by the cap over the cap.

    python -m bench.b7_personalised [--recipients 20000] [--cap 90] [--repeat 1]
"""

from __future__ import annotations

import argparse
import time

from bench.common import fmt, phones, record, stack, summarise

NAME = "B7 personalised text"
VENDOR = "smsclouds"
TEMPLATE = "Hola {name}, su codigo es {code}"
SHARED = "Hola Ana, su codigo es 4821"


def one_job(s, job: dict, n: int, cap: float) -> float:  # type: ignore[no-untyped-def]
    """Rows/s of one job from submit to all sent (or to the cap)."""
    started = time.perf_counter()
    job_id = s.submit_cli(job)
    elapsed, sent = s.run_until(job_id, n, cap, started)
    if sent < n:
        s.cancel(job_id)
    return float(sent / elapsed)


def run_once(s, n: int, start: int, cap: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    account = s.vendor.account(VENDOR)
    s.vendor.reset()
    shared = one_job(s, {"account": account, "text": SHARED, "recipients": phones(VENDOR, n, start)}, n, cap)
    recipients = [
        {"phone": phone, "vars": {"name": f"Ana {i}", "code": f"{i % 10000:04d}"}}
        for i, phone in enumerate(phones(VENDOR, n, start + n))
    ]
    personal = one_job(s, {"account": account, "text": TEMPLATE, "recipients": recipients}, n, cap)
    return {
        "ratio": personal / shared,
        "personalised/s": personal,
        "shared/s": shared,
        "duplicates": len(s.vendor.duplicates()),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--cap", type=float, default=90, help="seconds each job runs at most")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    runs = []
    with stack(latency=args.latency, workers_n=args.workers) as s:
        for i in range(args.repeat):
            runs.append(run_once(s, args.recipients, 2 * i * args.recipients, args.cap))
            print(f"{NAME} run {i + 1}: {fmt(runs[-1])}", flush=True)
    figures: dict[str, object] = {
        "recipients": args.recipients,
        "workers": args.workers,
        "latency s": args.latency,
        "cap s": args.cap,
        **summarise(runs, ["ratio", "personalised/s", "shared/s"]),
        "duplicates": max(r["duplicates"] for r in runs),
        "target": "ratio >= 0.5",
    }
    print(f"{NAME}: {fmt(figures)}")
    if not args.no_record:
        record(NAME, figures)
    return figures


if __name__ == "__main__":
    main()
