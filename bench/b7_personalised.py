"""B7, personalised text: 20,000 recipients with ``Hola {name}, su codigo es {code}`` on the
smsclouds simulator (answering at once: the project is what is timed), 2 worker processes,
rows sent per second of the send phase (the vendor's first request → every row sent), ÷ the
same for the same job with one shared text, in the same run. Target: >= 0.5. The seconds
``dispatcher submit`` took (ingest, where the text is rendered) are reported beside.

Each job's send phase stops at ``--cap`` seconds (its rate is then the rows sent by the cap
over the cap); the job is canceled before the next starts.

    python -m bench.b7_personalised [--recipients 20000] [--cap 30] [--repeat 1]
"""

from __future__ import annotations

import argparse
import time

from bench.common import fmt, phones, publish, stack, summarise

NAME = "B7 personalised text"
VENDOR = "smsclouds"
TEMPLATE = "Hola {name}, su codigo es {code}"
SHARED = "Hola Ana, su codigo es 4821"


def one_job(s, job: dict, n: int, cap: float) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(rows/s of the send phase, seconds ``dispatcher submit`` took) of one job."""
    s.vendor.reset()
    started = time.perf_counter()
    mono = time.monotonic()
    job_id = s.submit_cli(job)
    submitted = time.perf_counter() - started
    while not s.vendor.count(VENDOR) and time.perf_counter() - started < submitted + cap:
        time.sleep(0.05)
    sends = s.vendor.sends(VENDOR, 0)
    first = (sends[0].at - mono) if sends else submitted
    elapsed, sent = s.run_until(job_id, n, first + cap, started)
    if sent < n:
        s.cancel(job_id)
    return sent / (elapsed - first), submitted


def run_once(s, n: int, start: int, cap: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    account = s.vendor.account(VENDOR)
    s.vendor.reset()
    shared, shared_submit = one_job(
        s, {"account": account, "text": SHARED, "recipients": phones(VENDOR, n, start)}, n, cap
    )
    recipients = [
        {"phone": phone, "vars": {"name": f"Ana {i}", "code": f"{i % 10000:04d}"}}
        for i, phone in enumerate(phones(VENDOR, n, start + n))
    ]
    personal, personal_submit = one_job(
        s, {"account": account, "text": TEMPLATE, "recipients": recipients}, n, cap
    )
    return {
        "ratio": personal / shared,
        "personalised/s": personal,
        "shared/s": shared,
        "personalised submit s": personal_submit,
        "shared submit s": shared_submit,
        "duplicates": len(s.vendor.duplicates()),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--cap", type=float, default=30, help="seconds each job's send phase runs at most")
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
        **summarise(runs, ["ratio", "personalised/s", "shared/s", "personalised submit s", "shared submit s"]),
        "duplicates": max(r["duplicates"] for r in runs),
        "target": "ratio >= 0.5",
    }
    publish(NAME, figures, args.no_record)
    return figures


if __name__ == "__main__":
    main()
