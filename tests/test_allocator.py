from __future__ import annotations

import platform
import resource
from concurrent.futures import ThreadPoolExecutor

import pytest

from service import allocator

GLIBC = platform.libc_ver()[0] == "glibc"


def _written(size: int) -> bytes:
    return b"\x01" * size  # every page written, as a parsed block's are


def _faults_for_large_allocations(count: int, size: int) -> int:
    """Minor page faults while ``count`` buffers of about ``size`` bytes are made in a worker
    thread and freed in this one, one after another, as a unit's blocks are (without the
    thread, glibc's own adapting threshold already reuses them)."""
    with ThreadPoolExecutor(1) as worker:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for i in range(count):
            buffer = worker.submit(_written, size + i * 4096).result()
            del buffer
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_large_blocks_are_reused_instead_of_faulted_in_again() -> None:
    size, count = 6 * 1024 * 1024, 20
    pages = size // resource.getpagesize()
    assert allocator.keep_large_blocks() is True
    faults = _faults_for_large_allocations(count, size)
    # Untuned, every buffer is a fresh mapping: count * pages faults (30,934 measured).
    # Reused, only the first buffer's pages fault in.
    assert faults < 3 * pages


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_setting_the_thresholds_twice_asks_the_allocator_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allocator.keep_large_blocks()
    calls: list[int] = []

    def counted(parameter: int, value: int) -> bool:
        calls.append(parameter)
        return True

    monkeypatch.setattr(allocator, "_mallopt", counted)
    assert allocator.keep_large_blocks() is True
    assert calls == []
