"""Process-level speed settings for CPU training."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch

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


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU multiplies bfloat16 natively (AVX-512 BF16 or AMX), where bf16 autocast pays off.

    Measured on this project's machines: ~2.5x faster ResNet training with AVX-512 BF16 (shared/PERF_NOTES.md),
    ~10x *slower* without it (bf16 is then emulated).
    """
    try:
        with open(cpuinfo) as file:
            for line in file:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``auto`` -> the fastest safe Lightning precision for the training device; anything else unchanged.

    GPU: ``bf16-mixed`` where supported, else ``16-mixed``; CPU: ``bf16-mixed`` only with native bf16
    (see :func:`cpu_has_native_bf16`), else ``32-true``.
    """
    if precision != "auto":
        return precision
    if accelerator not in ("cpu",) and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"
