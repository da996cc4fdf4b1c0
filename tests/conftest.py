"""Shared fixtures: real PostgreSQL and SQLite databases, real Redis, accounts, clocks.

Tests that need a server skip locally with the reason when it is not reachable, and fail in CI
(``CI=true``), where every server must be there.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dispatcher.config import Settings, parse_accounts
from dispatcher.db import make_engine, migrate
from dispatcher.models import Base

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Workers the tests start serve no metrics port unless a test asks (two runs would share 9808).
os.environ.setdefault("DISPATCHER_METRICS_PORT", "0")
PG_ADMIN = os.environ.get("SMSD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
#: the Redis server the tests use; each run claims a database number of its own on it
REDIS_SERVER = os.environ.get("SMSD_TEST_REDIS", "redis://127.0.0.1:6379")
#: the key that marks a Redis database as this run's (it lives as long as the run, refreshed)
REDIS_OWNER_KEY = "smsdispatch:test-run-owner"
RUN_ID = uuid.uuid4().hex
#: seconds an owner mark outlives a run that died without releasing it (a live run renews it)
REDIS_OWNER_TTL = 600
#: seconds between two renewals of this run's mark
REDIS_RENEW_EVERY = 60
# Empties a database and marks it ours again, in one step, so no other run can claim it between.
_WIPE_SCRIPT = "redis.call('FLUSHDB'); return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])"
# Renews the mark only while it is still ours.
_RENEW_SCRIPT = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"
)


def _claim_redis_db() -> str:
    """Claim an empty Redis database number for this run; other runs on the machine keep theirs.

    A database is ours when it was empty and our mark went in with SET NX; nothing else is ever
    flushed. Without a reachable Redis the URL still names a database, and the tests that need
    it skip (or fail, in CI) when they try it.
    """
    import redis

    base = REDIS_SERVER.rstrip("/")
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{base}/{number}")
        try:
            if client.dbsize() == 0 and client.set(REDIS_OWNER_KEY, RUN_ID, nx=True, ex=REDIS_OWNER_TTL):
                if client.dbsize() == 1:
                    _keep_claim(f"{base}/{number}")
                    return f"{base}/{number}"
                client.delete(REDIS_OWNER_KEY)  # someone else's keys arrived meanwhile
        except redis.RedisError:
            return f"{base}/15"
        finally:
            client.close()
    raise RuntimeError(f"no empty Redis database left on {base} for this test run")


def _keep_claim(url: str) -> None:
    """Renew this run's mark while the process lives; a killed run's mark expires on its own."""
    import threading

    import redis

    def renew() -> None:
        client = redis.Redis.from_url(url)
        while True:
            time.sleep(REDIS_RENEW_EVERY)
            try:
                client.eval(_RENEW_SCRIPT, 1, REDIS_OWNER_KEY, RUN_ID, REDIS_OWNER_TTL)
            except redis.RedisError:
                pass

    threading.Thread(target=renew, name="redis-claim", daemon=True).start()


#: this process's Redis database once claimed: under pytest-xdist each worker process claims
#: its own on first use, and the controller, which runs no test, claims none
_claimed: list[str] = []


def redis_url() -> str:
    """This process's own Redis database, claimed the first time it is asked for."""
    if not _claimed:
        _claimed.append(_claim_redis_db())
    return _claimed[0]


def __getattr__(name: str) -> str:
    # ``from tests.conftest import REDIS_URL`` claims the database on first use (PEP 562).
    if name == "REDIS_URL":
        return redis_url()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def wipe_redis(client) -> None:  # type: ignore[no-untyped-def]
    """Empty this run's own Redis database (never another's): it must still carry our mark."""
    owner = client.get(REDIS_OWNER_KEY)
    if owner not in (None, RUN_ID.encode()):
        raise RuntimeError(f"Redis {redis_url()} belongs to another test run; not flushing it")
    client.eval(_WIPE_SCRIPT, 1, REDIS_OWNER_KEY, RUN_ID, REDIS_OWNER_TTL)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Give this run's Redis database back (if it claimed one): empty, without our mark."""
    import redis

    if not _claimed:
        return
    client = redis.Redis.from_url(_claimed[0])
    try:
        if client.get(REDIS_OWNER_KEY) == RUN_ID.encode():
            client.flushdb()
    except redis.RedisError:
        pass
    finally:
        client.close()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Bring a pytest-xdist worker's fault scenario rows (tests/faults) to this, the controller."""
    rows = getattr(node, "workeroutput", {}).get("fault_scenarios")
    if rows:
        from tests.faults import report

        report.RESULTS.extend(report.Outcome(**row) for row in json.loads(rows))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Every fault scenario of the run, one line each, after the test results."""
    report = sys.modules.get("tests.faults.report")
    if report is not None and report.RESULTS:
        terminalreporter.section("fault scenarios")
        terminalreporter.write_line(report.summary())


def unavailable(what: str, exc: BaseException) -> None:
    """Skip locally, fail in CI: a server the test needs is not reachable."""
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if IN_CI:
        pytest.fail(message + "; CI must have it")
    pytest.skip(message)


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, when: datetime):
        self.when = when

    def now(self) -> datetime:
        return self.when

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.when += timedelta(seconds=seconds)


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """Create a PostgreSQL database of our own, migrated; drop it afterwards."""
    admin = make_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"smsd_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        unavailable("PostgreSQL", exc)
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file for this test session, migrated (the embedded default)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'smsdispatch.db'}"
    migrate(url)
    return url


def _wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The same test on SQLite and on PostgreSQL, each starting empty."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    eng = make_engine(url)
    _wipe(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    eng = make_engine(pg_url)
    _wipe(eng)
    yield eng
    eng.dispose()


def empty_redis() -> Any:
    """This run's Redis database, emptied; the test is skipped (failed on CI) when Redis is down."""
    import redis

    client = redis.Redis.from_url(redis_url())
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable("Redis", exc)
    wipe_redis(client)
    return client


@pytest.fixture
def redis_client():  # type: ignore[no-untyped-def]
    """A real Redis: this run's own database, emptied before and after."""
    client = empty_redis()
    yield client
    wipe_redis(client)
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for in-process tests (no environment needed)."""
    return Settings(
        DATABASE_URL="sqlite://", REDIS_URL=redis_url(), DISPATCHER_ACCOUNTS=str(tmp_path / "accounts.toml")
    )


def make_accounts(base_url: str, **policy: object) -> dict:
    """Accounts of the IT Cloud double used across the tests."""
    spec = {"vendor": "itcloud", "base_url": base_url, "user": "ops@example.com", "token": "${ITCLOUD_TOKEN}"}
    spec.update({"retry_base": 0.01, "retry_max": 0.05, "read_timeout": 1.0, "connect_timeout": 1.0})
    spec.update(policy)
    return parse_accounts({"accounts": {"co-main": spec}}, {"ITCLOUD_TOKEN": "s3cr3t-token-xyz"})


BOGOTA_10AM = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 10:00 in Bogota
BOGOTA_2130 = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # 21:30 in Bogota, Nov 23


@pytest.fixture
def sandbox():  # type: ignore[no-untyped-def]
    """The IT Cloud simulator on loopback, with one customer, at 10:00 in Bogota."""
    from dispatcher.sandbox.core import Ledger, SandboxServer
    from dispatcher.sandbox.itcloud import ItCloudSim

    ledger = Ledger()
    clock = FakeClock(BOGOTA_10AM)
    sim = ItCloudSim(ledger, clock)
    sim.add_customer("ops@example.com", "s3cr3t-token-xyz")
    server = SandboxServer({"itcloud": sim}).start()
    server.ledger, server.sim, server.clock = ledger, sim, clock
    yield server
    server.stop()
