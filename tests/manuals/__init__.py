"""The vendor manuals' examples, written once: their sample requests, values and replies.

The adapter table tests (``tests/vendors/``) and the simulator tests (``tests/sandbox/``) both
read them, so a manual's example is copied from the manual in one place only. Longer sample
replies are files under ``tests/vendors/fixtures/<vendor>/``, read with :func:`sample`.
"""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).parents[1] / "vendors" / "fixtures"


def sample(vendor: str, name: str) -> str:
    """A manual's sample reply kept as a file, as written."""
    return (SAMPLES / vendor / name).read_text()
