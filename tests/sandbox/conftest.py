"""The simulators' fixtures: simulators on loopback, and a customer's URL for their pushes."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.sandbox.harness import Boxes, customer_server


@pytest.fixture
def boxes() -> Iterator[Boxes]:
    """Start simulators with ``boxes.start(...)``; every one is stopped afterwards."""
    started = Boxes()
    yield started
    started.stop()


@pytest.fixture
def customer() -> Iterator[ThreadingHTTPServer]:
    """A customer's URL on loopback: forms POSTed to it in ``received``, GET paths in ``paths``."""
    with customer_server() as httpd:
        yield httpd
