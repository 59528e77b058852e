"""One writer per run directory: a lock file naming its holder (PID, host, start time).

`RunLock(folder)` creates `folder/.lock` with O_CREAT|O_EXCL, so of two processes exactly one gets
it. The other gets `LockHeld`, whose one-line message names the holder and what to do. A lock left
behind by a process that died (same host, PID no longer running, or running but started at
another time: a reused PID) is stale: it is taken over and the takeover is logged. A lock held on
another host cannot be checked from here; the message says how to remove it once that run is gone.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from qrdistill.errors import LockHeld

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot, Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of /proc/PID/stat


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    def __init__(self, folder: str | os.PathLike, what: str = "run directory"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.held = False

    def _owner(self) -> dict:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "process_start": _process_start(os.getpid()),
        }

    def _read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written right now, or damaged

    def _is_stale(self, owner: dict) -> bool:
        if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
            return False
        if not _alive(owner["pid"]):
            return True
        recorded, now = owner.get("process_start"), _process_start(owner["pid"])
        return recorded is not None and now is not None and recorded != now  # the PID was reused

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._read()
                if owner is None:
                    continue  # released meanwhile: try again
                if owner == {}:  # its holder is writing it this instant
                    time.sleep(0.05)
                    owner = self._read()
                    if owner in (None, {}):
                        continue
                if self._is_stale(owner):
                    # Rename first: of several processes taking over, only one succeeds.
                    grave = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
                    try:
                        os.rename(self.path, grave)
                    except FileNotFoundError:
                        continue
                    grave.unlink(missing_ok=True)
                    log.warning(
                        "%s: took over a stale lock of process %s on %s (started %s), "
                        "which is no longer running",
                        self.folder,
                        owner.get("pid"),
                        owner.get("host"),
                        owner.get("started"),
                    )
                    continue
                raise LockHeld(
                    f"{self.folder}: this {self.what} is in use by process {owner.get('pid')} on "
                    f"{owner.get('host')} (started {owner.get('started')}); wait for it to finish, or "
                    f"if that process is gone, remove {self.path}"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._owner(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            self.held = True
            return self
        raise LockHeld(
            f"{self.folder}: could not take the lock {self.path}; remove it if no run is using it"
        )

    def release(self) -> None:
        if self.held:
            owner = self._read()
            if owner and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
