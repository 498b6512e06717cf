"""Process-level tuning of the Python runtime for ``stream-wfm run``.

Garbage collection: the pipeline keeps up to ``max_buffered_events`` events in
flight, each a handful of container objects (decoded JSON, work, job,
request). With CPython's default thresholds (700, 10, 10) the collector runs
every 700 allocations and walks those live objects again and again: measured
with ``stream-wfm bench`` it took ~30 % of the CPU per delivered event. The hot
path allocates no reference cycles (everything is freed by reference
counting), so collections can be rare; and what exists once the service has
started (modules, the loaded integrations) is moved out of the collector's
sight with :func:`gc.freeze`.

The event loop: uvloop when installed (the ``speed`` extra), else asyncio's
(:func:`run_on_loop`, for the commands and the benchmark scripts alike).

Memory: loading the config topic allocates and frees a lot (record values,
parsed JSON, validation); glibc keeps the freed pages. Once started, the
process hands them back with ``malloc_trim`` (measured with 100,000
integrations: the RSS drops by a few tens of MB).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: Allocations between young collections (CPython's default is 700).
GEN0_THRESHOLD: Final = 50_000


def tune_gc() -> None:
    """Freeze what exists now (call once started) and make collections rare."""
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, max(gen1, 20), max(gen2, 100))
    release_free_memory()


def release_free_memory() -> bool:
    """Return freed heap pages to the OS (glibc ``malloc_trim``); False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl)
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def run_on_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end on uvloop when it is installed, else on asyncio's default
    loop, and return its result."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
