"""Freed heap memory goes back to the system (glibc's malloc_trim), where a long-lived actor holds on to it."""

from __future__ import annotations

import sys

import psutil
import pytest

from raysim.runtime.memory import _malloc_trim, release_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or _malloc_trim() is None, reason="glibc's malloc_trim")
def test_memory_freed_below_live_objects_is_returned():
    process = psutil.Process()
    chunks = [bytearray(1000) for _ in range(100_000)]  # 100 MB of small heap chunks
    pinned = bytearray(1000)  # allocated above them: the heap's top stays in use
    del chunks
    before = process.memory_info().rss
    release_freed_memory()
    assert before - process.memory_info().rss > 50 * 2**20
    assert len(pinned) == 1000
