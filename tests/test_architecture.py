"""The import rules of the house, read from the source of every module.

(a) Layers point down: nothing under ``dispatcher/`` imports the Celery edge (``tasks``, Celery)
    but the command line package (``dispatcher/cli/``), the top of the house; ``import dispatcher``
    or any of its other modules loads no Celery. ``dispatcher/opscommands.py`` and
    ``dispatcher/console.py`` serve only the command line but get the broker handed in, so they
    obey the rule like any other module.
(b) Adapters are sans-I/O: nothing under ``dispatcher/vendors/`` imports SQLAlchemy, an HTTP
    client, or reads a clock; they build requests and read responses, the sender runs them.
(c) A vendor is one place: no vendor is named (in code, strings, comments or docstrings) outside
    its adapter (``dispatcher/vendors/``) and its simulator (``dispatcher/sandbox/``).

Each rule has a check over the real tree and a check that it finds a planted offence.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.vendors import VENDORS

ROOT = Path(__file__).resolve().parent.parent
#: the command line package: the one part of ``dispatcher/`` that may reach the Celery edge
CLI = "dispatcher/cli/"
#: imports that are the Celery edge
EDGE = ("tasks", "celery", "kombu")
#: imports an adapter may not make: a database or the dispatcher's stateful layers, a client that
#: opens connections, the project's clock
VENDOR_IMPORTS = (
    *("sqlalchemy", "redis", "dispatcher.db", "dispatcher.models", "dispatcher.clock"),
    *("requests", "urllib.request", "http.client", "urllib3", "aiohttp"),
)
#: names an adapter may not use: clock reads and HTTP calls (building ``httpx.Request`` is fine)
VENDOR_CALLS = frozenset(
    {f"datetime.datetime.{name}" for name in ("now", "utcnow", "today")}
    | {"datetime.date.today"}
    | {f"time.{name}" for name in ("time", "time_ns", "monotonic", "monotonic_ns")}
    | {f"httpx.{name}" for name in ("Client", "AsyncClient", "request", "stream")}
    | {f"httpx.{verb}" for verb in ("get", "post", "put", "patch", "delete", "head", "options")}
)
#: where vendors are named on purpose
OWNERS = ("dispatcher/vendors/", "dispatcher/sandbox/")
#: every vendor key, and the names the manuals give them
VENDOR_NAMES = re.compile("|".join([*map(re.escape, VENDORS), r"it[\s_-]?cloud", "messangi"]), re.IGNORECASE)


def modules(*tops: str) -> list[str]:
    """Paths (from the repository root) of every Python module under these folders."""
    return sorted(str(p.relative_to(ROOT)) for top in tops for p in (ROOT / top).rglob("*.py"))


def imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import, at any depth; ``from a import b`` gives a and a.b."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def imports_of(source: str, roots: tuple[str, ...]) -> list[str]:
    """Rule (a): imports of anything under ``roots`` (the Celery edge, or the command line above it)."""
    return [f"line {line}: {name}" for line, name in imported(ast.parse(source)) if within(name, roots)]


def edge_imports(source: str) -> list[str]:
    """Imports of the Celery edge."""
    return imports_of(source, EDGE)


def aliases(tree: ast.AST) -> dict[str, str]:
    """Local name → what it stands for, from the module's imports (``import httpx as h``: h → httpx)."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                # `import a.b` binds a; `import a.b as x` binds x to a.b
                top = alias.name.split(".")[0]
                found[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def dotted(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return None if head is None else [*head, node.attr]
    return None


def adapter_io(source: str) -> list[str]:
    """Rule (b): a database or HTTP client imported, a clock read or an HTTP call named."""
    tree = ast.parse(source)
    found = [f"line {line}: imports {name}" for line, name in imported(tree) if within(name, VENDOR_IMPORTS)]
    found += [f"line {line}: imports {name}" for line, name in imported(tree) if name in VENDOR_CALLS]
    names = aliases(tree)
    for node in ast.walk(tree):
        parts = dotted(node) if isinstance(node, ast.Attribute) else None
        if parts and parts[0] in names:
            name = ".".join([names[parts[0]], *parts[1:]])
            if name in VENDOR_CALLS:
                found.append(f"line {node.lineno}: {name}")
    return found


def vendor_names(source: str) -> list[str]:
    """Rule (c): vendor names anywhere in the text: code, strings, comments and docstrings."""
    return [
        f"line {number}: {match.group(0)}"
        for number, line in enumerate(source.splitlines(), 1)
        for match in VENDOR_NAMES.finditer(line)
    ]


# (a) Layers point down


@pytest.mark.parametrize("module", [m for m in modules("dispatcher") if not m.startswith(CLI)])
def test_no_module_of_the_library_imports_the_celery_edge(module: str) -> None:
    assert edge_imports((ROOT / module).read_text()) == []


def test_the_edge_check_finds_an_import_of_tasks_or_celery_even_inside_a_function() -> None:
    source = "import celery.signals\ndef f():\n    from tasks.dispatch import release_account\nimport taskset\n"
    assert edge_imports(source) == [
        "line 1: celery.signals",
        "line 3: tasks.dispatch",
        "line 3: tasks.dispatch.release_account",
    ]


def test_importing_the_library_loads_no_celery() -> None:
    # Alembic runs the migrations' scripts; every other module is imported, in a fresh interpreter
    names = [
        m.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for m in modules("dispatcher")
        if not m.startswith((CLI, "dispatcher/migrations/"))
    ]
    probe = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'celery' not in sys.modules and 'tasks' not in sys.modules, name + ' loads the Celery edge'\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_command_line_is_the_one_that_reaches_the_edge() -> None:
    # The exception is real: were the command line free of the edge, the rule would need no exception
    assert [m for m in modules(CLI) if edge_imports((ROOT / m).read_text())]


def command_line_imports(source: str) -> list[str]:
    """Imports of the command line, which sits on top of the edge."""
    return imports_of(source, ("dispatcher.cli",))


@pytest.mark.parametrize("module", modules("tasks"))
def test_the_edge_does_not_import_the_command_line_above_it(module: str) -> None:
    assert command_line_imports((ROOT / module).read_text()) == []


def test_the_command_line_check_finds_an_import_of_it() -> None:
    source = "from dispatcher.cli import main\nimport dispatcher.client\nimport dispatcher.cli.runcommands\n"
    assert command_line_imports(source) == [
        "line 1: dispatcher.cli",
        "line 1: dispatcher.cli.main",
        "line 3: dispatcher.cli.runcommands",
    ]


# (b) Adapters are sans-I/O


@pytest.mark.parametrize("module", modules("dispatcher/vendors"))
def test_no_adapter_opens_a_database_a_connection_or_reads_a_clock(module: str) -> None:
    assert adapter_io((ROOT / module).read_text()) == []


def test_the_io_check_finds_databases_clients_and_clocks_under_any_alias() -> None:
    source = (
        "import httpx as h\nimport datetime as dt\nfrom time import monotonic\n"
        "from sqlalchemy import select\nimport urllib.request\nfrom dispatcher.models import Message\n"
        "def f():\n    dt.datetime.now()\n    h.Client()\n    h.Request('GET', 'http://x')\n    monotonic()\n"
    )
    assert adapter_io(source) == [
        "line 4: imports sqlalchemy",
        "line 4: imports sqlalchemy.select",
        "line 5: imports urllib.request",
        "line 6: imports dispatcher.models",
        "line 6: imports dispatcher.models.Message",
        "line 3: imports time.monotonic",
        "line 8: datetime.datetime.now",
        "line 9: httpx.Client",
    ]


# (c) A vendor is one place


@pytest.mark.parametrize("module", [m for m in modules("dispatcher", "tasks") if not m.startswith(OWNERS)])
def test_no_module_outside_the_adapters_and_simulators_names_a_vendor(module: str) -> None:
    assert vendor_names((ROOT / module).read_text()) == []


def test_the_name_check_finds_a_vendor_in_code_strings_comments_and_docstrings() -> None:
    vendor = sorted(VENDORS)[0]
    source = f'"""Sends through {vendor}."""\n# IT Cloud pushes\nif vendor == "{vendor.upper()}":\n    pass\n'
    assert vendor_names(source) == [f"line 1: {vendor}", "line 2: IT Cloud", f"line 3: {vendor.upper()}"]
