"""Where a modality's training data lives: in memory or streamed from disk (``data.cache``).

``auto`` keeps the data in memory when its decoded / tokenized size is below :data:`MEMORY_FRACTION` of the
memory available now (:func:`available_memory`, capped by a cgroup limit), else streams it; ``memory`` and
``stream`` force either. Each modality sizes its own data and calls :func:`decide_cache`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import CACHE_MODES
from ..config import format_bytes as _size
from ..errors import SelfSupError, did_you_mean

log = logging.getLogger("selfsup")

MEMORY_FRACTION = 0.25  # auto: cache in memory when the data takes less than this share of available RAM


# --------------------------------------------------------------------------- the cache decision


def _read_bytes(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes of physical memory available now, or None when unknown.

    Linux: ``MemAvailable`` (free + reclaimable page cache), capped by a cgroup v2 memory limit (containers);
    elsewhere the free pages from ``os.sysconf``.
    """
    available = None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    limit, used = _read_bytes("/sys/fs/cgroup/memory.max"), _read_bytes("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        available = min(available, max(0, limit - used))
    return available


def check_fits(need: int, what: str, fix: str) -> None:
    """One line when ``need`` bytes (of ``what``) exceed the memory available now; says the size and ``fix``."""
    available = available_memory()
    if available is not None and need > available:
        raise SelfSupError(f"{what} would take {_size(need)}, more than the {_size(available)} of memory "
                           f"available; {fix}")



def check_cache_mode(mode: str) -> str:
    if mode not in CACHE_MODES:
        raise SelfSupError(f"data.cache={mode!r} is not a cache mode{did_you_mean(str(mode), CACHE_MODES)}; "
                           f"use one of {', '.join(CACHE_MODES)}")
    return mode


def decide_cache(mode: str, need: int, what: str, form: str, memory_budget: int | None = None) -> str:
    """``memory`` or ``stream`` for ``mode``: ``auto`` keeps the data in memory when its ``need`` bytes (in
    ``form``: decoded, tokenized) fit in ``memory_budget`` (default :data:`MEMORY_FRACTION` of
    :func:`available_memory`), and logs which and why; a forced ``memory`` that cannot fit at all stops with
    one line giving the size it needs."""
    if check_cache_mode(mode) == "memory":  # forced: it must fit in all the memory there is
        check_fits(need, f"data.cache=memory: {what} ({form})",
                   "use --cache stream, or auto (which streams what does not fit), or smaller settings")
    if mode != "auto":
        return mode
    if memory_budget is None:
        available = available_memory()
        if available is None:
            log.info("data.cache=auto: available memory unknown; keeping %s (%s %s) in memory", what, _size(need), form)
            return "memory"
        memory_budget = int(MEMORY_FRACTION * available)
        budget = f"{_size(memory_budget)} ({MEMORY_FRACTION:.0%} of the {_size(available)} of memory available)"
    else:
        budget = f"the memory budget of {_size(memory_budget)}"
    if need < memory_budget:
        log.info("data.cache=auto: %s take %s %s, within %s: keeping them in memory", what, _size(need), form, budget)
        return "memory"
    log.warning("data.cache=auto: %s would take %s %s, more than %s: streaming from disk "
                "(slower; use --num-workers to read in parallel, or --cache memory to override)",
                what, _size(need), form, budget)
    return "stream"


