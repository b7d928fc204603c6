"""Giving freed heap memory back to the operating system (glibc's ``malloc_trim``).

glibc keeps what Python and numpy free in its arenas for reuse, and returns it to the system
only from the top of a heap. The process that starts a run reads and partitions the data set,
puts it in the object store and keeps nothing of it; without a trim it would still hold about
21 MB of freed heap for the rest of the run. ``malloc_trim(0)`` returns it, in well under a
millisecond. Without glibc it does nothing.

Client actors do not trim: what a round frees is what the next round allocates again, and
returning it after every call made W2's rounds 18% slower (the pages are faulted back in) for
about 25 MB of the run's peak (benchmarks/README.md, "Footprint").
"""

from __future__ import annotations

import ctypes
import functools
from typing import Callable


def release_freed_memory() -> None:
    """Returns the heap memory this process has freed to the system, where the C library can."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` among the symbols this process has loaded, or None (musl, macOS)."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None)
