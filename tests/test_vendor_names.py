"""No module outside the adapters and the simulators names a vendor: what a vendor can do is
declared in its adapter (``dispatcher/vendors/``) and read from there, so a sixth vendor is its
module, its table test and its simulator, and nothing else.

Code and string literals count; comments and docstrings may describe vendors (they decide nothing).
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from dispatcher.vendors import VENDORS

ROOT = Path(__file__).resolve().parent.parent
#: where vendors are named on purpose
OWNERS = ("dispatcher/vendors/", "dispatcher/sandbox/")
#: every vendor key, and the names the manuals give them
NAMES = re.compile("|".join([*map(re.escape, VENDORS), r"it[\s_-]?cloud", "messangi"]), re.IGNORECASE)
#: modules another change is moving their vendor facts out of; each must start passing (strict)
NOT_YET: dict[str, str] = {}


def modules() -> list[str]:
    found = sorted(str(p.relative_to(ROOT)) for top in ("dispatcher", "tasks") for p in (ROOT / top).rglob("*.py"))
    return [m for m in found if not m.startswith(OWNERS)]


def vendor_names(source: str) -> list[str]:
    """Vendor names in code and string literals, leaving out comments and docstrings."""
    named, previous = [], tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        docstring = token.type == tokenize.STRING and previous in (
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
        )
        if token.type not in (tokenize.COMMENT, tokenize.NL) and not docstring:
            named += [f"line {token.start[0]}: {m.group(0)}" for m in NAMES.finditer(token.string)]
        if token.type not in (tokenize.COMMENT, tokenize.NL):
            previous = token.type
    return named


def test_the_check_finds_a_vendor_named_in_code_and_skips_docs() -> None:
    source = '"""Sends through smsclouds."""\n# ogangi pushes\nif vendor == "smsclick":\n    pass\n'
    assert vendor_names(source) == ["line 3: smsclick"]


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(m, marks=pytest.mark.xfail(reason=NOT_YET[m], strict=True)) if m in NOT_YET else m
        for m in modules()
    ],
)
def test_no_module_outside_the_adapters_names_a_vendor(module: str) -> None:
    assert vendor_names((ROOT / module).read_text()) == []
