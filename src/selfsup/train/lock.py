"""One writer per run folder: ``RUN_DIR/.selfsup.lock``, held by ``selfsup pretrain`` while it writes there.

The lock is an OS advisory lock (``fcntl.flock``) on an open file descriptor, so the kernel drops it when
the holding process ends in any way, ``kill -9`` included: a lock file that nobody holds is stale and the
next run takes it over (with a warning naming the process that left it). While held, the file records
the holder's pid, host and start time, so a second process can say who is writing. On a normal or failed
end the holder removes the file again (and the folder, when the lock created it and nothing else was
written), so the run folder's layout is unchanged. On a file system without ``flock`` (some network mounts)
and on Windows the run goes on unguarded, with a warning (Windows: silently).

DDP: the ranks of one run share the lock. Only the launching process takes it; a process that a
launcher started as another rank of a run (``RANK``, ``LOCAL_RANK``, ``NODE_RANK``, ``SLURM_PROCID`` or
``JSM_NAMESPACE_RANK`` set to a number other than 0 — Lightning's DDP launcher, torchrun, SLURM and LSF
all set them) skips it. The other ranks never start on their own: Lightning spawns them from inside the
holder's ``trainer.fit``, and torchrun/SLURM stop the whole group when rank 0 fails to get the lock.

Readers (``evaluate``, ``embed``, ``export``) take no lock: checkpoints are replaced atomically, so a read
during training sees the previous or the new file, never a half-written one.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime
from pathlib import Path
from types import TracebackType

from ..distributed import launched_as_other_rank
from ..errors import SelfSupError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, runs are not guarded
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("selfsup")

LOCK_FILE = ".selfsup.lock"


def _describe(holder: dict) -> str:
    """``process 1234 on host X since 2026-01-01T10:00:00+00:00`` from a lock file's record."""
    if not holder:
        return "another process (it has not recorded its pid yet)"
    return f"process {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('started', '?')}"


def _read_record(fd: int) -> dict:
    """The holder's record in the lock file open at ``fd`` ({} when empty or unreadable)."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
        record = json.loads(text) if text else {}
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


class RunLock:
    """Context manager: holds ``run_dir``'s lock (creating the folder if needed) or raises ``SelfSupError``
    naming the process that holds it."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._created: list[Path] = []  # folders this lock made, deepest first

    def __enter__(self) -> RunLock:
        if fcntl is None or launched_as_other_rank():
            return self
        self._make_folder()
        try:
            self._fd = self._acquire()
        except BaseException:
            self._remove_created()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        """Remove the lock file and let go of the lock (and of the folders it created, if still empty)."""
        if self._fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # still holding it: nobody can have taken this file over
            finally:
                os.close(self._fd)
                self._fd = None
        self._remove_created()

    def _make_folder(self) -> None:
        missing = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise SelfSupError(f"{self.run_dir}: is a file, not a folder; choose a new --out folder") from None
        except OSError as exc:
            raise SelfSupError(f"{self.run_dir}: cannot create the run folder ({exc.strerror}); "
                               "choose a --out folder you can write to") from None
        self._created = missing

    def _remove_created(self) -> None:
        for folder in self._created:  # deepest first; stops at the first one that is not empty
            try:
                folder.rmdir()
            except OSError:
                break
        self._created = []

    def _acquire(self) -> int | None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise SelfSupError(f"{self.path}: cannot create the run folder's lock file ({exc.strerror}); "
                                   "choose a --out folder you can write to") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_record(fd)
                os.close(fd)
                raise SelfSupError(f"{self.run_dir} is being written by {_describe(holder)}; "
                                   "wait for it to finish or use another --out folder") from None
            except OSError as exc:  # a file system without flock (some network mounts): run, unguarded
                os.close(fd)
                self.path.unlink(missing_ok=True)
                log.warning("%s: cannot lock the run folder (%s); nothing stops a second run from writing to it",
                            self.run_dir, exc.strerror)
                return None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed this file after we opened it: open the new one
                os.close(fd)
                continue
            self._record(fd)
            return fd

    def _record(self, fd: int) -> None:
        """Take over a stale record (a holder that died without removing the file) and write ours."""
        stale = _read_record(fd)
        if stale:
            log.warning("%s: taking over the lock left by %s, which no longer runs", self.run_dir, _describe(stale))
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
