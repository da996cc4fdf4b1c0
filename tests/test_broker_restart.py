"""A Redis restart while the worker holds unacknowledged messages does not end the worker.

kombu 5.7.0 ends the worker's main process on such a restart (``'NoneType' object has no
attribute 'hostname'`` while restoring unacknowledged messages; celery/kombu#970, #582). The
shared Redis must not be restarted, so this test runs a Redis server of its own, with
append-only persistence as the README asks, and restarts it twice.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import select

from dispatcher.db import make_engine
from dispatcher.models import Message
from tests.conftest import IN_CI, fresh_pg_database
from tests.workers import celery_worker, free_port, itcloud_vendor, stop, submit, wait_for

pytestmark = pytest.mark.worker


class OwnRedis:
    """A redis-server of this test's own, with append-only persistence."""

    def __init__(self, workdir: Path):
        self.port, self.workdir = free_port(), workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.workdir)]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                                        text=True).stdout.strip() == "PONG", 20, "redis-server")  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: Redis flushes its append-only file and exits
            self.proc.wait(20)


def reconnected(log: Path, restarts: int) -> bool:
    """Say whether the worker connected again after each of ``restarts`` Redis restarts."""
    return log.read_text().count("Connected to redis") > restarts


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if not shutil.which("redis-server"):
        if IN_CI:
            pytest.fail("redis-server is not installed; CI must have it")
        pytest.skip("redis-server is not installed")
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_the_worker_survives_redis_restarts_while_holding_messages(tmp_path: Path, own_redis: OwnRedis) -> None:
    with itcloud_vendor(tmp_path) as vendor, fresh_pg_database() as db_url:
        log = tmp_path / "worker.log"
        env = {**vendor.env, "REDIS_URL": own_redis.url, "DATABASE_URL": db_url}
        worker = celery_worker(env, log, "restart")
        engine = make_engine(db_url)
        producer = Celery(broker=own_redis.url)
        producer.conf.broker_transport_options = {"sep": ":", "priority_steps": list(range(10))}
        try:
            wait_for(lambda: "ready." in log.read_text(), 60, "the worker to start")
            # Given the worker holds messages unacknowledged (tasks waiting for their countdown)
            for batch in range(3):
                producer.send_task("dispatcher.send_batch", args=[10_000 + batch], countdown=50, queue="send")
            wait_for(lambda: log.read_text().count("dispatcher.send_batch[") >= 3, 30, "the messages held")
            # When Redis restarts twice
            for restart in (1, 2):
                own_redis.stop()
                time.sleep(2)
                own_redis.start()
                wait_for(lambda n=restart: reconnected(log, n) or worker.poll() is not None, 60, "a reconnect")
                assert worker.poll() is None, "the worker exited:\n" + log.read_text()[-3000:]
            # Then the same worker process is still there and serves the next job
            job = submit(producer, {"account": "co-main", "text": "Hola", "recipients": ["+573001234567"]})

            def state() -> str | None:
                with engine.connect() as conn:
                    return conn.execute(select(Message.state).where(Message.job_id == job)).scalar()

            wait_for(lambda: state() == "sent" or worker.poll() is not None, 60, "the job after the restarts")
            assert worker.poll() is None, "the worker exited:\n" + log.read_text()[-3000:]
            assert state() == "sent" and "Unrecoverable error" not in log.read_text()
        finally:
            stop(worker)
            engine.dispose()
