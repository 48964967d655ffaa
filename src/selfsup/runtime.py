"""Process-level speed settings for CPU training."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def retain_freed_memory() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the OS after every step.

    Eager PyTorch on a CPU allocates and frees the same large activation buffers each step;
    glibc serves them with mmap/munmap, and the page faults cost 20-26 % of CPU time
    (shared/PERF_NOTES.md). Disabling mmap for large blocks and raising the trim threshold
    keeps those pages mapped (measured: ~1.3x faster steps for the tiny CNN on 2 cores).
    A no-op returning False where glibc is not the C library.
    """
    name = ctypes.util.find_library("c")
    if not name or "libc.so" not in name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):
        return False
