"""``dispatcher worker``: the documented way to run a worker starts it again when it dies, and
stops it (and itself) cleanly when told to. A real worker, Redis, PostgreSQL and IT Cloud's
simulator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher.db import make_engine
from dispatcher.models import Message
from tests.conftest import empty_redis, fresh_pg_database, wipe_redis
from tests.workers import WORKER_ARGS, children, itcloud_vendor, producer, start, submit, wait_for

pytestmark = pytest.mark.worker


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_comes_back_and_a_stopped_one_stays_stopped(tmp_path: Path) -> None:
    client = empty_redis()
    log = tmp_path / "supervisor.log"
    with itcloud_vendor(tmp_path) as vendor, fresh_pg_database() as db_url:
        command = [sys.executable, "-m", "dispatcher.cli", "worker", "--", *WORKER_ARGS, "-n", "supervised@%h"]
        supervisor = start(command, {**vendor.env, "DATABASE_URL": db_url}, log)
        engine = make_engine(db_url)
        try:
            wait_for(lambda: log.read_text().count("ready.") == 1, 60, "the worker to start")
            (first,) = children(supervisor.pid)
            # When the worker's main process is killed outright
            os.kill(first, signal.SIGKILL)
            # Then the supervisor starts a new one, which serves the next job
            wait_for(lambda: log.read_text().count("ready.") == 2, 60, "the worker to come back")
            (second,) = children(supervisor.pid)
            assert second != first and "restarting in" in log.read_text()
            job = submit(producer(), {"account": "co-main", "text": "Hola", "recipients": ["+573001234567"]})

            def state() -> str | None:
                with engine.connect() as conn:
                    return conn.execute(select(Message.state).where(Message.job_id == job)).scalar()

            wait_for(lambda: state() == "sent", 60, "the job sent by the new worker")
            # And SIGTERM to the supervisor stops the worker cleanly and restarts nothing
            supervisor.send_signal(signal.SIGTERM)
            assert supervisor.wait(60) == 0
            assert not alive(second) and log.read_text().count("ready.") == 2
            assert "Warm shutdown" in log.read_text()
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
                subprocess.run(["pkill", "-KILL", "-P", str(supervisor.pid)], check=False)
            engine.dispose()
            wipe_redis(client)
