"""A worker's pool process gives its memory back after a large job.

A ``dispatcher.submit`` message of 100,000 recipients is about 100 MB of Python objects in the
pool process that unpickles and ingests it. Python frees them when the task is done, but the C
allocator kept the freed pages, so the process stayed some 60 MB above its resting size for
good. At the end of each submit task the pool process drops the job's recipients, collects and
asks the C library to hand the free pages back (``give_back``). ``malloc_trim`` is glibc's;
elsewhere (musl, macOS) only the collection happens.

The worker's main process, which decodes the message to hand it to the pool process, keeps the
last message it acknowledged (body and decoded recipients) until the next one arrives: the broker
transport drops acknowledged messages from its bookkeeping only on the next delivery. That is one
message at most, never a growing amount; docs/benchmarks.md shows it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable


def _find_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to call
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


_trim = _find_trim()


def give_back() -> None:
    """Free what a finished job left (cycles included), then hand free pages back to the system."""
    gc.collect()
    if _trim is not None:
        _trim(0)
