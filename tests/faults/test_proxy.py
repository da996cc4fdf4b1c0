"""The PostgreSQL proxy the fault scenarios use: it forwards, refuses, cuts, and comes back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from dispatcher.db import make_engine
from tests.faults.proxy import PgProxy, wait_until_refused

pytestmark = pytest.mark.faults


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[PgProxy, Engine]]:
    proxy = PgProxy(make_url(pg_url).port or 5432).start()
    engine = make_engine(make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False))
    yield proxy, engine
    engine.dispose()
    proxy.stop()


def test_the_proxy_cuts_refuses_and_comes_back(proxied: tuple[PgProxy, Engine]) -> None:
    proxy, engine = proxied
    # Given a connection open through the proxy
    conn = engine.connect()
    assert conn.execute(text("select 1")).scalar() == 1
    # When the proxy goes down
    proxy.down()
    # Then the open connection is cut and new ones are refused
    with pytest.raises(OperationalError):
        conn.execute(text("select 1"))
    conn.close()
    wait_until_refused(proxy.port)
    with pytest.raises(OperationalError), engine.connect() as again:
        again.execute(text("select 1"))
    # And once it is up again, on the same port, connections go through
    proxy.up()
    with engine.connect() as again:
        assert again.execute(text("select 1")).scalar() == 1


def test_refuse_for_comes_back_by_itself(proxied: tuple[PgProxy, Engine]) -> None:
    proxy, engine = proxied
    proxy.refuse_for(1.0)
    wait_until_refused(proxy.port)
    deadline = time.monotonic() + 10
    while True:
        try:
            with engine.connect() as conn:
                assert conn.execute(text("select 1")).scalar() == 1
            return
        except OperationalError:
            assert time.monotonic() < deadline, "the proxy did not come back"
            time.sleep(0.1)
