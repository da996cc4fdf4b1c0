"""Adapters stay sans-I/O: nothing under ``dispatcher/vendors/`` opens a connection, touches the
database or reads a clock. The sender owns all three, so an adapter's table test needs no server,
no database and no frozen time, and a vendor can never send or record behind the sender's back.

Read from the source (imports and attribute uses), so a forbidden use fails here even in code no
table case reaches.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDORS = ROOT / "dispatcher" / "vendors"
#: modules an adapter may not import: the database, the dispatcher's stateful layers, a clock
FORBIDDEN_MODULES = ("sqlalchemy", "redis", "time", "dispatcher.db", "dispatcher.models", "dispatcher.clock")
#: attribute uses that open a connection or read the clock
FORBIDDEN_ATTRIBUTES = {
    ("httpx", "Client"),
    ("httpx", "AsyncClient"),
    ("httpx", "get"),
    ("httpx", "post"),
    ("httpx", "request"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
}


def adapter_modules() -> list[str]:
    """Every module under dispatcher/vendors/, relative to the project root."""
    return sorted(str(p.relative_to(ROOT)) for p in VENDORS.rglob("*.py"))


def io_uses(source: str) -> list[str]:
    """The forbidden imports and attribute uses in one module's source, by line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_MODULES):
                found.append((node.lineno, f"imports {name}"))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in FORBIDDEN_ATTRIBUTES:
                found.append((node.lineno, f"uses {node.value.id}.{node.attr}"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_the_check_finds_a_connection_a_database_and_a_clock() -> None:
    source = (
        "import httpx\nfrom sqlalchemy import select\nfrom datetime import datetime\n"
        "client = httpx.Client()\nnow = datetime.now()\nrequest = httpx.Request('GET', 'https://x')\n"
    )
    assert io_uses(source) == [
        "line 2: imports sqlalchemy",
        "line 4: uses httpx.Client",
        "line 5: uses datetime.now",
    ]


@pytest.mark.parametrize("module", adapter_modules())
def test_an_adapter_module_does_no_io(module: str) -> None:
    assert io_uses((ROOT / module).read_text()) == []
