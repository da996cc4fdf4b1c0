"""B4, ingest: a CSV of 1,000,000 recipients stored by ``dispatcher submit FILE`` into PostgreSQL,
wall time and the command's peak RSS, beside ``COPY`` of the same rows into the same table (a
fresh database of the same schema) in the same run. Target: <= 60 s and <= 300 MB.

And 100,000 recipients through the Celery door (task ``dispatcher.submit``, 2 worker processes):
seconds from publish to the job ``accepted``, and each worker process's RSS at rest before,
after the job, and after one more small job.

    python -m bench.b4_ingest [--rows 1000000] [--door 100000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.common import DISPATCHER, ROOT, fmt, pg_database, publish, redis_database, summarise, workers
from dispatcher.models import Job

NAME = "B4 ingest"
TEMPLATE = "Hola {name}, su codigo es {code}"
ACCOUNT = "co-main"
ACCOUNTS = f'[accounts.{ACCOUNT}]\nvendor = "itcloud"\nuser = "ops@example.com"\ntoken = "${{B4_TOKEN}}"\n'
#: message columns a job's rows carry when ingest writes them (the rest keep their defaults)
COLUMNS = (
    "job_id, batch_id, account, address, text, vars, state, reason, attempts, not_before, deadline, "
    "created_at, updated_at"
)
#: the tables copied out after the ingest: jobs and batches whole, the messages' written columns
SOURCES = (("jobs", "jobs"), ("batches", "batches"), ("messages", f"(SELECT {COLUMNS} FROM messages)"))  # noqa: S608


def _pg(db_url: str) -> str:
    """The URL psycopg takes."""
    return db_url.replace("postgresql+psycopg://", "postgresql://")


def write_csv(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write("phone,name,code\n")
        for i in range(rows):
            out.write(f"+57300{i:07d},Ana {i},{i % 10000}\n")


def _env(tmp: Path, db_url: str, redis_url: str) -> dict[str, str]:
    (tmp / "accounts.toml").write_text(ACCOUNTS)
    return {
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "DISPATCHER_ACCOUNTS": str(tmp / "accounts.toml"),
        "B4_TOKEN": "bench-token-123456",
        "DISPATCHER_LOG_LEVEL": "WARNING",
        "DISPATCHER_METRICS_PORT": "0",
    }


def _copy_out(db_url: str) -> dict[str, bytes]:
    import psycopg

    out: dict[str, bytes] = {}
    with psycopg.connect(_pg(db_url)) as conn:
        for name, source in SOURCES:
            data = bytearray()
            with conn.cursor().copy(f"COPY {source} TO STDOUT") as copy:
                for block in copy:
                    data += block
            out[name] = bytes(data)
    return out


def copy_seconds(rows: dict[str, bytes]) -> float:
    """Seconds ``COPY`` takes to write the same message rows into a fresh database's messages table."""
    import psycopg

    with pg_database() as db_url, psycopg.connect(_pg(db_url)) as conn:
        for name in ("jobs", "batches"):
            with conn.cursor().copy(f"COPY {name} FROM STDIN") as copy:
                copy.write(rows[name])
        conn.commit()
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY messages ({COLUMNS}) FROM STDIN") as copy:
            data = rows["messages"]
            for at in range(0, len(data), 1 << 20):
                copy.write(data[at : at + (1 << 20)])
        conn.commit()
        return time.perf_counter() - started


def csv_once(tmp: Path, csv: Path, rows: int) -> dict[str, float]:
    """``dispatcher submit recipients.csv`` (seconds, peak RSS) and COPY of what it stored."""
    with pg_database() as db_url, redis_database() as redis_url:
        env = {**os.environ, **_env(tmp, db_url, redis_url), "PYTHONPATH": str(ROOT)}
        command = [*DISPATCHER, "submit", str(csv), "--account", ACCOUNT, "--text", TEMPLATE]
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"dispatcher submit failed ({proc.returncode}): {err.decode()[-500:]}")
        stored = _copy_out(db_url)
    copy = copy_seconds(stored)
    count = stored["messages"].count(b"\n")
    if count != rows:
        raise RuntimeError(f"{count} rows stored of {rows}")
    return {
        "submit s": seconds,
        "peak RSS MB": usage.ru_maxrss / 1024,
        "COPY s": copy,
        "COPY/submit": copy / seconds,
    }


def door(tmp: Path, recipients: int) -> dict[str, float]:
    """A job of ``recipients`` through task ``dispatcher.submit``; worker RSS before and after."""
    from celery import Celery

    from dispatcher.db import make_engine

    with pg_database() as db_url, redis_database() as redis_url:
        env = _env(tmp, db_url, redis_url)
        engine = make_engine(db_url)
        app = Celery(broker=redis_url, set_as_current=False)

        def submit(job: dict[str, Any], timeout: float = 900) -> float:
            job_id = str(uuid.uuid4())
            started = time.perf_counter()
            app.send_task("dispatcher.submit", args=[job], queue="jobs", task_id=job_id)
            while time.perf_counter() - started < timeout:
                with engine.connect() as conn:
                    state = conn.execute(select(Job.state).where(Job.id == job_id)).scalar()
                if state not in (None, "ingesting"):
                    return time.perf_counter() - started
                time.sleep(0.2)
            raise TimeoutError(f"job {job_id} not stored after {timeout:.0f} s")

        small = {"account": ACCOUNT, "text": "Hola", "recipients": ["+573001234567"]}
        with workers(env, tmp, n=2, beat=False) as running:
            for _ in range(4):  # each pool process has run a submit: its resting size
                submit(small)
            time.sleep(3)
            rest = running.rss_mb()
            job = {
                "account": ACCOUNT,
                "text": TEMPLATE,
                "recipients": [
                    {"phone": f"+57301{i:07d}", "vars": {"name": f"Ana {i}", "code": str(i % 10000)}}
                    for i in range(recipients)
                ],
            }
            seconds = submit(job)
            del job
            time.sleep(15)  # the task ends after the job is stored (it queues the batches)
            after = running.rss_mb()
            submit(small)
            time.sleep(3)
            later = running.rss_mb()
        engine.dispose()
        app.close()
    main_pid = min(rest)  # the node's main process started first
    children = sorted(pid for pid in rest if pid != main_pid)
    grown = [after.get(pid, 0) - rest[pid] for pid in children]
    return {
        "door s": seconds,
        "main rest MB": rest[main_pid],
        "main after MB": after.get(main_pid, 0),
        "main after next job MB": later.get(main_pid, 0),
        "pool rest MB (max)": max(rest[pid] for pid in children),
        "pool after MB (max)": max(after.get(pid, 0) for pid in children),
        "pool grown MB (max)": max(grown),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--door", type=int, default=100_000, help="recipients through the Celery door")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smsd-b4-") as name:
        tmp = Path(name)
        csv = tmp / "recipients.csv"
        write_csv(csv, args.rows)
        runs = []
        for i in range(args.repeat):
            runs.append(csv_once(tmp, csv, args.rows))
            print(f"{NAME} CSV run {i + 1}: {fmt(runs[-1])}", flush=True)
        memory: dict[str, object]
        try:
            memory = dict(door(tmp, args.door))
        except (RuntimeError, TimeoutError) as exc:  # e.g. no free Redis database: keep the CSV's figures
            memory = {"door": f"not run: {exc}"}
        print(f"{NAME} Celery door: {fmt(memory)}", flush=True)
    figures: dict[str, object] = {
        "rows": args.rows,
        **summarise(runs, ["submit s", "COPY s", "COPY/submit"]),
        "peak RSS MB max": max(r["peak RSS MB"] for r in runs),
        "door recipients": args.door,
        **memory,
        "target": "submit <= 60 s, peak RSS <= 300 MB; pool and main back to rest",
    }
    publish(NAME, figures, args.no_record)
    return figures


if __name__ == "__main__":
    main()
