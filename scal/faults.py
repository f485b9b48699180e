"""Faults from outside a study, ended clean: locks against concurrent use, and one-line causes.

- `store_init_lock`: the first use of a new sqlite store creates and migrates its schema; two
  processes doing that at once crash in MLflow's migration (``duplicate column name``). The first
  open of a sqlite store happens under a file lock beside the database.
- `study_lock`: one study per experiment and store at a time. A second identical command (or any
  other study of the same experiment) started while the first is alive is refused at once with
  `StudyBusy`, before it writes anything; the lock is the kernel's (flock), so a driver killed
  with SIGKILL releases it and the next command resumes.
- `describe`: the cause of a fault met while the study runs (the store's file deleted or made
  read-only, a full disk), as one line, or None for anything else. `scal.study.run_study` raises
  it as `Fault`, and the CLI prints it and exits with `EXIT_FAULT`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import socket
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from scal.checks import cannot_create_in, sqlite_path

EXIT_FAULT = 3      # the CLI's exit code for a fault (bad input is 2, Ctrl-C 130)

_STORE_TEXTS = {    # what SQLite (through SQLAlchemy and MLflow) says when its file goes away or goes read-only
    "readonly database": "cannot be written (read-only, or its file was deleted or moved)",
    "unable to open database file": "cannot be opened",
    "disk i/o error": "failed with a disk I/O error",
    "database or disk is full": "is on a full disk",
    "no such table": "was replaced by an empty file",
}


class StudyBusy(RuntimeError):
    """Another live process is running a study of this experiment in this store."""


class Fault(RuntimeError):
    """A study stopped by a fault from outside; the message is one line."""


@contextlib.contextmanager
def store_init_lock(uri: str) -> Iterator[None]:
    """Hold a lock beside a sqlite database while it is first opened (created and migrated)."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    with FileLock(str(db) + ".lock", timeout=120):
        yield


def _lock_path(uri: str, study: str) -> Path:
    """Beside a sqlite database; in the temporary folder for a server (one host's view)."""
    name = hashlib.sha256(f"{uri}\0{study}".encode()).hexdigest()[:20]
    db = sqlite_path(uri)
    folder = db.parent if db is not None else Path(tempfile.gettempdir()) / "scal-locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f".scal-study-{name}.lock"


@contextlib.contextmanager
def study_lock(uri: str, study: str) -> Iterator[None]:
    """Run the block as the only study of ``study`` in the store ``uri`` on this host, or raise
    `StudyBusy` at once naming the process that holds it."""
    path = _lock_path(uri, study)
    owner = path.with_suffix(".owner")
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = owner.read_text().strip() if owner.exists() else "another process"
        raise StudyBusy(f"study {study!r} is already running in {uri} ({holder}); wait for it to finish, "
                        "or name another --experiment") from None
    try:
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        yield
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        lock.release()


@dataclass(frozen=True)
class StoreFile:
    """A sqlite store's file as it was when the study opened it, to tell later what became of it."""

    path: Path
    inode: int

    @classmethod
    def of(cls, uri: str) -> "StoreFile | None":
        db = sqlite_path(uri)
        if db is None or not db.exists():
            return None
        return cls(db, db.stat().st_ino)

    def vanished(self) -> bool:
        try:
            return self.path.stat().st_ino != self.inode
        except OSError:
            return True


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _not_writable(uri: str) -> bool:
    """The sqlite store's file, or the folder its journal is made in, exists and cannot be written."""
    db = sqlite_path(uri)
    return db is not None and db.exists() and (not os.access(db, os.W_OK) or cannot_create_in(db.parent) is not None)


def describe(exc: BaseException, uri: str, store: StoreFile | None = None) -> str | None:
    """One line for a fault from outside (the store's file gone or read-only, a full disk), or
    None when ``exc`` is not one."""
    keep = "the trials logged before it are kept there, and the same command resumes the study"
    if store is not None and store.vanished():
        return (f"the MLflow store file {store.path} was deleted or moved while the study ran; the trials "
                "logged in it went with it: run the command again to start over")
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" ({e.filename})" if e.filename else ""
            return f"no space left on device{where}; {keep} once there is space"
        if isinstance(e, OSError) and e.errno == errno.EROFS:
            return f"read-only file system ({e.filename or uri}); {keep} once it is writable"
        if isinstance(e, shutil.Error) and f"[errno {errno.ENOSPC}]" in str(e.args).lower():
            # copytree (MLflow copying a model's code) gathers its per-file OSErrors into one
            # shutil.Error without an errno; their texts still carry it.
            return f"no space left on device; {keep} once there is space"
        text = str(e).lower()
        if isinstance(e, sqlite3.Error) or "sqlite3." in text:
            for needle, what in _STORE_TEXTS.items():
                if needle in text:
                    if _not_writable(uri):
                        # SQLite's own word depends on where the write stopped: a store whose file
                        # or folder went read-only reports "readonly database" or, when the journal
                        # could not be made beside it, "disk I/O error". Name the cause the user can fix.
                        what = _STORE_TEXTS["readonly database"]
                    return f"the MLflow store {uri} {what}; {keep} once it is writable"
    return None
