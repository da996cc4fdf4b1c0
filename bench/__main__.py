"""Run every benchmark, one after another, and append their figures to docs/benchmarks.md.

    python -m bench            # the issue's sizes; under 15 minutes on 2 cores
    python -m bench --quick    # small sizes, one repeat each, nothing recorded: a smoke run
    python -m bench --only b1_batch,b3_paced

A benchmark is a module of ``bench/`` with ``main(argv)``; adding one is one line in
``BENCHMARKS``: its module name, its arguments for the full run, and for ``--quick``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

#: (module of bench/, arguments of the full run, arguments of --quick)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("b1_batch", ["--repeat", "1", "--cap", "300"], ["--recipients", "1000", "--repeat", "1"]),
    ("b2_one_number", ["--repeat", "3", "--cap", "15"], ["--recipients", "200", "--cap", "5", "--repeat", "1"]),
    ("b3_paced", ["--repeat", "1"], ["--recipients", "3000", "--repeat", "1"]),
    ("b4_ingest", ["--repeat", "1"], ["--rows", "5000", "--door", "2000"]),
    (
        "b5_reports",
        ["--repeat", "3", "--reports", "20000", "--pushes", "2000"],
        ["--rows", "20000", "--reports", "2000", "--pushes", "200", "--repeat", "1"],
    ),
    ("b6_otp", ["--otps", "10"], ["--otps", "2", "--every", "0.5", "--timeout", "60"]),
    ("b7_personalised", ["--repeat", "1", "--cap", "30"], ["--recipients", "300", "--cap", "10"]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, nothing recorded")
    parser.add_argument("--only", help="comma list of benchmark modules to run")
    args = parser.parse_args(argv)
    chosen = [b for b in BENCHMARKS if not args.only or b[0] in args.only.split(",")]
    failed = []
    began = time.perf_counter()
    for name, full, quick in chosen:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
            module.main([*quick, "--no-record"] if args.quick else full)
        except Exception:  # noqa: BLE001 - one benchmark's failure must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - started:.0f} s", flush=True)
    print(f"== all: {time.perf_counter() - began:.0f} s; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
