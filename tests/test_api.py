"""The Python door: ``tasks.submit_job(job)`` stores a job and queues what is due on the broker.

Below it, ``dispatcher.submit_job`` knows no broker: it hands the job's account to the ``Queue``
it is given.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

import dispatcher
from dispatcher.clock import SystemClock
from dispatcher.config import Settings
from dispatcher.db import make_engine, migrate
from dispatcher.models import Batch, Message
from dispatcher.ratelimit import MemoryLimiter
from dispatcher.services import Services
from dispatcher.transport import Transport
from tasks import submit_job
from tests.conftest import REDIS_URL, make_accounts


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_client):  # type: ignore[no-untyped-def]
    import tasks.runtime

    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[accounts.co-main]\nvendor = "itcloud"\nbase_url = "http://127.0.0.1:9/itcloud"\n'
        'user = "ops@example.com"\ntoken = "${ITCLOUD_TOKEN}"\nwindow = "always"\n'
    )
    url = f"sqlite:///{tmp_path / 'api.db'}"
    migrate(url)
    for name, value in {
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "DISPATCHER_ACCOUNTS": str(accounts),
        "ITCLOUD_TOKEN": "tok-api-123456",
    }.items():
        monkeypatch.setenv(name, value)
    tasks.runtime.reset()
    yield make_engine(url)
    tasks.runtime.reset()


def test_submit_job_stores_the_job_and_queues_its_batch(configured) -> None:  # type: ignore[no-untyped-def]
    job = {
        "account": "co-main",
        "text": "Hola",
        "recipients": ["+573001234567", "3001234568"],
        "idempotency_key": "k1",
    }
    job_id = submit_job(job)
    # The same key again answers with the same job
    assert submit_job(job) == job_id
    with configured.connect() as conn:
        phones = conn.execute(select(Message.address).where(Message.job_id == job_id)).scalars().all()
        batch = conn.execute(select(Batch.state)).scalar_one()
    assert sorted(phones) == ["+573001234567", "+573001234568"]
    assert batch == "queued"  # handed to the send queue (no worker runs here)


def test_submit_job_returns_the_id_of_a_rejected_job(configured) -> None:  # type: ignore[no-untyped-def]
    job_id = submit_job({"account": "nobody", "text": "x", "recipients": ["+573001234567"]})
    from dispatcher.status import job_status

    status = job_status(configured, job_id)
    assert status["state"] == "rejected" and "unknown account" in status["reason"]


class ListQueue:
    """The library's ``Queue`` in a list: the accounts it was asked to release, in order."""

    def __init__(self) -> None:
        self.released: list[str | None] = []

    def release(self, account: str | None) -> None:
        self.released.append(account)


def test_the_library_hands_a_stored_job_to_the_queue_it_is_given(tmp_path: Path) -> None:
    # Given the library's services on a database of its own, and a queue that is no broker
    url = f"sqlite:///{tmp_path / 'port.db'}"
    migrate(url)
    engine = make_engine(url)
    accounts = make_accounts("http://127.0.0.1:9/itcloud")
    services = Services(engine, accounts, MemoryLimiter(), Transport(), Settings(DATABASE_URL=url), SystemClock())
    queue = ListQueue()
    job = {"account": "co-main", "text": "Hola", "recipients": ["+573001234567"], "idempotency_key": "k1"}
    # When the same job is submitted twice, and a job for an unknown account once
    job_id = dispatcher.submit_job(job, services=services, queue=queue)
    assert dispatcher.submit_job(job, services=services, queue=queue) == job_id
    dispatcher.submit_job({"account": "nobody", "text": "x", "recipients": ["1"]}, services=services, queue=queue)
    # Then its account was handed to the queue once: not for the repeat, not for the rejected job
    assert queue.released == ["co-main"]
    with engine.connect() as conn:
        assert conn.execute(select(Batch.state)).scalar_one() == "waiting"  # nothing queued it for real
