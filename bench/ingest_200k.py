"""Time the largest inline job ingest accepts (200,000 recipients) on a fresh PostgreSQL database.

    python -m bench.ingest_200k [--recipients N] [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Reports the seconds ``ingest_job`` took and the rows it stored; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from bench.common import pg_database
from dispatcher.config import parse_accounts
from dispatcher.db import make_engine
from dispatcher.jobs import ingest_job
from dispatcher.jobschema import MAX_INLINE_RECIPIENTS
from dispatcher.models import Message

ACCOUNTS = parse_accounts(
    {"accounts": {"co-main": {"vendor": "itcloud", "user": "ops@example.com", "token": "${T}"}}},
    {"T": "bench-token-123456"},
)
#: 10:00 in Bogota, inside the account's sending window
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def main() -> None:
    """Ingest one job of N recipients (one phone per row) and print the time it took."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=MAX_INLINE_RECIPIENTS)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with pg_database(args.admin_url) as url:
        engine = make_engine(url)
        job = {
            "account": "co-main",
            "text": "Hola {name}, su codigo es {code}",
            "recipients": [
                {"phone": f"+57300{i:07d}", "vars": {"name": f"Ana {i}", "code": str(i % 10000)}}
                for i in range(args.recipients)
            ],
        }
        started = time.perf_counter()
        result = ingest_job(engine, ACCOUNTS, job, NOW)
        took = time.perf_counter() - started
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(Message)).scalar()
        print(f"{args.recipients} recipients: {result.state}, {stored} rows stored in {took:.1f} s")
        engine.dispose()


if __name__ == "__main__":
    main()
