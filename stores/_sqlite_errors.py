"""What went wrong with a SQLite file, told truthfully.

`StoreUnavailable` says "acknowledged checkpoints are safe; once the store is
back, resume": right for a lock held too long or a full disk, wrong for a
damaged file, a directory this user may not enter, or a read-only file,
which no waiting repairs. `error` picks the error that says which it is,
from SQLite's result code and the file's permissions.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat

from resumable.errors import (
    StoreDamaged,
    StorePermissionDenied,
    StoreReadOnly,
    StoreUnavailable,
)

_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_NO_ACCESS = (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH)
_DENIED_ERRNOS = (errno.EACCES, errno.EPERM)


def primary_code(exc: BaseException) -> int:
    """SQLite's primary result code (extended codes keep it in their low byte)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def is_busy(exc: BaseException) -> bool:
    return primary_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def error(url: str, path: str, operation: str, exc: BaseException) -> StoreUnavailable:
    """The error for `exc`, met while `operation` on the file at `path`."""
    reason = str(exc)
    code = primary_code(exc)
    if code in _DAMAGED:
        return StoreDamaged(url, path, operation, reason)
    if code == sqlite3.SQLITE_READONLY:
        return StoreReadOnly(url, path, operation, why_read_only(path) or reason)
    denied = isinstance(exc, OSError) and exc.errno in _DENIED_ERRNOS
    if denied or code in _NO_ACCESS:
        problem = access_problem(path)
        if problem is not None:
            return StorePermissionDenied(url, path, operation, problem)
    return StoreUnavailable(url, operation, reason)


def _mode(path: str) -> str:
    try:
        return f"mode {stat.S_IMODE(os.stat(path).st_mode):04o}"
    except OSError:
        return "mode unknown"


def _directories(path: str) -> list[str]:
    """The directories above `path`, from the root down."""
    found = []
    directory = os.path.dirname(path)
    while True:
        found.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            return found[::-1]
        directory = parent


def access_problem(path: str) -> str | None:
    """Why this process may not open the file at `path`, if permissions are
    why: a directory on the way it may not enter, a file it may not read, or
    a missing file it may not create. None if the permissions look fine."""
    for directory in _directories(path):
        if not os.path.exists(directory):
            break
        if not os.access(directory, os.X_OK):
            return f"this user may not enter the directory {directory} ({_mode(directory)})"
    if os.path.exists(path):
        if not os.access(path, os.R_OK):
            return f"this user may not read the file ({_mode(path)})"
        return None
    directory = os.path.dirname(path)
    if os.path.isdir(directory) and not os.access(directory, os.W_OK):
        return f"the file does not exist and this user may not create it in {directory}"
    return None


def why_read_only(path: str) -> str | None:
    """Why the file at `path` cannot be written, if permissions say why."""
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"the file is not writable by this user, {_mode(path)}"
    directory = os.path.dirname(path)
    if not os.access(directory, os.W_OK):
        return (
            f"its directory {directory} is not writable by this user ({_mode(directory)}), "
            "and SQLite needs to create its -wal and -shm files there"
        )
    return None
