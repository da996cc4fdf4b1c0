"""``dispatcher.submit`` when PostgreSQL goes away mid-ingest: every job ends stored, once.

A real worker (two pool processes), beat, Redis and the IT Cloud simulator; PostgreSQL is
reached through ``PgProxy``, which refuses and cuts every connection for 10 s while the jobs
are being ingested.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from dispatcher.db import make_engine
from dispatcher.models import Job, Message
from tests.conftest import empty_redis, fresh_pg_database, wipe_redis
from tests.faults.proxy import PgProxy, wait_until_refused
from tests.workers import (
    celery_beat,
    celery_worker,
    itcloud_vendor,
    producer,
    stop,
    submit,
    wait_for,
)

pytestmark = pytest.mark.worker
JOBS = 5
#: recipients of each job: enough that ingest is under way when the database goes
RECIPIENTS = 1500


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    client = empty_redis()
    with itcloud_vendor(tmp_path) as vendor, fresh_pg_database() as db_url:
        url = make_url(db_url)
        proxy = PgProxy(url.port or 5432).start()
        env = {**vendor.env, "DATABASE_URL": url.set(port=proxy.port).render_as_string(hide_password=False)}
        log = tmp_path / "worker.log"
        worker = celery_worker(env, log, "pgdown", concurrency=2)
        beat = celery_beat(env, tmp_path / "beat.log", tmp_path / "beat-schedule")
        engine = make_engine(db_url)  # the test itself reads PostgreSQL directly
        try:
            wait_for(lambda: "ready." in log.read_text(), 60, "the worker to start")
            yield {"engine": engine, "vendor": vendor, "proxy": proxy, "log": log}
        finally:
            stop(worker, beat)
            proxy.stop()
            engine.dispose()
            wipe_redis(client)


def counts(engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        jobs = dict(conn.execute(select(Job.id, Job.state)).all())
        messages = dict(conn.execute(select(Message.job_id, func.count()).group_by(Message.job_id)).all())
        phones = conn.execute(select(func.count(func.distinct(Message.address)))).scalar_one()
    return {"jobs": jobs, "messages": messages, "phones": phones}


def test_jobs_ingested_while_postgresql_is_away_are_all_stored_once(stack: dict[str, Any]) -> None:
    engine, proxy = stack["engine"], stack["proxy"]
    app = producer()
    # Given five jobs on the queue
    ids = []
    for j in range(JOBS):
        recipients = [f"+5730{j}{i:07d}" for i in range(RECIPIENTS)]
        ids.append(submit(app, {"account": "co-main", "text": "Hola", "recipients": recipients}))
    # When PostgreSQL refuses and cuts every connection for 10 s as soon as ingest is under way
    wait_for(lambda: "dispatcher.submit[" in stack["log"].read_text(), 30, "the first job taken")
    proxy.refuse_for(10)
    wait_until_refused(proxy.port)
    # Then every job ends stored, accepted, with each recipient once
    wait_for(lambda: len(counts(engine)["jobs"]) == JOBS, 120, "every job stored")
    wait_for(lambda: counts(engine)["messages"] == dict.fromkeys(ids, RECIPIENTS), 60, "every recipient stored")
    # (a job's last rows are committed a moment before it is marked accepted)
    wait_for(lambda: counts(engine)["jobs"] == dict.fromkeys(ids, "accepted"), 30, "every job accepted")
    found = counts(engine)
    assert found["jobs"] == dict.fromkeys(ids, "accepted")
    assert found["phones"] == JOBS * RECIPIENTS
    assert "not stored yet (OperationalError)" in stack["log"].read_text()
    # And what is sent is sent once
    assert stack["vendor"].ledger.duplicates() == {}


def test_a_job_retried_for_over_an_hour_goes_back_to_the_queue_and_is_stored_later(stack: dict[str, Any]) -> None:
    engine, proxy, log, clock = stack["engine"], stack["proxy"], stack["log"], stack["vendor"].clock
    # Given PostgreSQL is away and a job is being retried
    proxy.down()
    job = submit(producer(), {"account": "co-main", "text": "Hola", "recipients": ["+573001234567"]})
    wait_for(lambda: f"job {job} not stored yet" in log.read_text(), 60, "the first retry")
    # When more than an hour passes (on the dispatcher's clock)
    clock.set(clock.now() + timedelta(hours=2))
    # Then its message goes back to the queue, comes back, and a new round of retries starts
    wait_for(lambda: f"job {job}: not stored after" in log.read_text(), 60, "the message given back")
    text = log.read_text()
    wait_for(lambda: log.read_text().count(f"job {job} not stored yet") > text.count(f"job {job} not stored yet"),
             60, "a new round of retries")  # fmt: skip
    # And once PostgreSQL is back the job is stored, once
    proxy.up()
    wait_for(lambda: counts(engine)["messages"] == {job: 1}, 90, "the job stored")
    # (its rows are committed a moment before the job is marked accepted)
    wait_for(lambda: counts(engine)["jobs"] == {job: "accepted"}, 30, "the job accepted")
    assert log.read_text().count(f"job {job}: not stored after") == 1
