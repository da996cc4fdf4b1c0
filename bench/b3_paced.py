"""B3, a vendor with a pause: IT Cloud's real limits (1000 numbers a request, 2 s between two
requests of an account) on its simulator, 4 worker processes, at least 60 s of sending.
Figures: numbers/s on the wire ÷ the cap of 500/s, and the pause violations the simulator saw.
Target: >= 0.95 and 0.

The wire rate is the numbers of all send requests over the span from the first request's
arrival to the last one's plus one pause (k full requests at the cap give exactly 500/s).

    python -m bench.b3_paced [--recipients 36000] [--workers 4] [--repeat 1]
"""

from __future__ import annotations

import argparse
import time

from bench.common import fmt, phones, publish, stack, summarise

NAME = "B3 paced vendor"
VENDOR = "itcloud"
TEXT = "Aviso: su pedido va en camino"
PAUSE = 2.0
BATCH = 1000
CAP = BATCH / PAUSE


def numbers_in(seen) -> int:  # type: ignore[no-untyped-def]
    return len([n for n in seen.params.get("GSM", "").split(",") if n.strip()])


def run_once(s, recipients: int, start: int, timeout: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    numbers = phones(VENDOR, recipients, start)
    s.vendor.reset()
    started = time.perf_counter()
    job_id = s.submit_cli({"account": s.vendor.account(VENDOR), "text": TEXT, "recipients": numbers})
    submitted = time.perf_counter() - started
    took = s.wait_sent(job_id, recipients, timeout, started)
    sends = s.vendor.sends(VENDOR)
    span = sends[-1].at - sends[0].at + PAUSE
    on_wire = sum(numbers_in(seen) for seen in sends)
    gaps = [b.at - a.at for a, b in zip(sends, sends[1:], strict=False)]
    return {
        "ratio": on_wire / span / CAP,
        "numbers/s": on_wire / span,
        "violations": len(s.vendor.violations()),
        "sending s": span,
        "end-to-end/s": recipients / took,
        "submit s": submitted,
        "requests": len(sends),
        "mean gap s": sum(gaps) / len(gaps) if gaps else 0.0,
        "duplicates": len(s.vendor.duplicates()),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=36_000, help="at the cap, 36,000 take 72 s")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    runs = []
    with stack(latency=0.0, workers_n=args.workers) as s:
        for i in range(args.repeat):
            runs.append(run_once(s, args.recipients, i * args.recipients, args.timeout))
            print(f"{NAME} run {i + 1}: {fmt(runs[-1])}", flush=True)
    figures = {
        "recipients": args.recipients,
        "workers": args.workers,
        **summarise(runs, ["ratio", "numbers/s", "sending s", "end-to-end/s", "mean gap s"]),
        "violations": max(r["violations"] for r in runs),
        "duplicates": max(r["duplicates"] for r in runs),
        "target": "ratio >= 0.95, 0 violations",
    }
    publish(NAME, figures, args.no_record)
    return figures


if __name__ == "__main__":
    main()
