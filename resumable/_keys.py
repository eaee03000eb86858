"""Secret keys for signing records: making one, keeping it in a file, and
the per-user key that signs local stores when none is configured.

A key is 32 random bytes written as URL-safe base64 (43 characters, no
padding): text that survives environment variables, `.env` files and secret
stores, with no comma, so several keys can be listed in
RESUMABLE_SECRET_KEY_FALLBACKS. The bytes of that text are the HMAC key.

Anything doubtful about a key file (unreadable, empty, owned by another user,
open to the group or the world) is a `KeyFileError`: records never fall back
to unsigned because a key could not be read.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from resumable._keypath import KEY_FILE_NAME, default_key_path
from resumable.errors import KeyFileError

__all__ = [
    "KEY_BYTES",
    "KEY_FILE_NAME",
    "default_key_path",
    "new_key",
    "read_key_file",
    "user_key",
    "write_key_file",
]

KEY_BYTES = 32
# How long a reader waits for a key file another process is writing (it was
# created empty by O_EXCL and is written just after): a few milliseconds in
# practice; past this an empty file is refused.
_HALF_WRITTEN_WAIT = 2.0

# Windows has no owner ids or mode bits to check (its ACLs are left to the
# user's profile directory, which is private by default).
_CHECK_MODES = os.name != "nt"

# Per-user keys already read, by path: a process reads its key file once,
# not at every execution.
_user_keys: dict[Path, bytes] = {}


def new_key() -> str:
    """A fresh random key, as text."""
    import secrets  # ~9 ms, only to make a key (not for `--help`'s key path)

    return secrets.token_urlsafe(KEY_BYTES)


def write_key_file(path: Path, key: str) -> None:
    """Create `path` holding `key`, readable by its owner only (0600).

    Refuses an existing file rather than replace a key that records may
    already be signed with. The mode is set when the file is created, so the
    key is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key + "\n")


def read_key_file(path: Path) -> bytes:
    """The key held in a file named by RESUMABLE_SECRET_KEY_FILE (as
    `resumable keygen --file` writes it), whitespace stripped.

    Its owner and read permissions are left to the deployment (a secret
    mounted read-only by an orchestrator is often root's and 0444), but a
    file others may write is refused: whoever rewrites it chooses the key."""
    text, info = _read(path, _FILE_HINT)
    if _CHECK_MODES and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise KeyFileError(str(path), _mode_text(info, "writable"), _chmod_hint(path))
    return _key_text(path, text, _FILE_HINT)


_FILE_HINT = (
    "RESUMABLE_SECRET_KEY_FILE must name a readable file holding the key "
    "(`resumable keygen --file PATH` writes one)"
)


def user_key() -> bytes:
    """The per-user key that signs local stores when no key is configured,
    created on first use: a 0600 file in a 0700 directory (see
    `default_key_path`). Processes racing to create it all end up with the
    one key the winner wrote."""
    path = default_key_path()
    key = _user_keys.get(path)
    if key is None:
        key = _user_keys[path] = _load_or_create(path)
    return key


def _load_or_create(path: Path) -> bytes:
    _private_directory(path.parent)
    if not os.path.lexists(path):
        try:
            write_key_file(path, new_key())
        except FileExistsError:
            pass  # another process made it just now: use theirs
        except OSError as exc:
            raise KeyFileError(
                str(path),
                f"cannot create it ({exc.strerror or exc})",
                "make its directory writable for this user, or set RESUMABLE_KEY_DIR, "
                "RESUMABLE_SECRET_KEY or RESUMABLE_SECRET_KEY_FILE",
            ) from None
    return _read_private(path)


def _private_directory(directory: Path) -> None:
    """Create the key's directory 0700; refuse one that another user owns
    or that others may write (they could swap the key file)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        raise KeyFileError(
            str(directory / KEY_FILE_NAME),
            f"cannot create its directory ({exc.strerror or exc})",
            "set RESUMABLE_KEY_DIR to a directory this user can write, or configure a key "
            "(RESUMABLE_SECRET_KEY or RESUMABLE_SECRET_KEY_FILE)",
        ) from None
    problem = _exposure(info, stat.S_IWGRP | stat.S_IWOTH, "writable")
    if problem is not None:
        raise KeyFileError(
            str(directory / KEY_FILE_NAME),
            f"its directory {directory}: {problem}",
            f"`chmod 700 {directory}` if it is yours, or set RESUMABLE_KEY_DIR to a private "
            "directory",
        )


def _read_private(path: Path) -> bytes:
    """Read the per-user key file, refusing one open to others; wait a
    moment for a file another process has just created and is writing."""
    deadline = time.monotonic() + _HALF_WRITTEN_WAIT
    while True:
        text, info = _read(path, _USER_HINT)
        problem = _exposure(info, 0o077, "readable or writable")
        if problem is not None:
            raise KeyFileError(str(path), problem, _chmod_hint(path))
        # The creator writes the key in one write() just after O_EXCL made
        # the file: the only half-written state a reader can see is empty.
        if text.strip() or time.monotonic() >= deadline:
            return _key_text(path, text, _USER_HINT)
        time.sleep(0.01)


_USER_HINT = (
    "an empty file holds no key yet, so nothing was signed with it: remove it and "
    "a new key is made; or configure a key (RESUMABLE_SECRET_KEY or "
    "RESUMABLE_SECRET_KEY_FILE)"
)


def _read(path: Path, hint: str) -> tuple[str, os.stat_result]:
    """The file's text and the status of the very file read (fstat on the
    open descriptor: no window for a swap between the check and the read);
    a `KeyFileError` with `hint` when it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read(), os.fstat(file.fileno())
    except OSError as exc:
        raise KeyFileError(str(path), f"cannot read it ({exc.strerror or exc})", hint) from None


def _key_text(path: Path, text: str, hint: str) -> bytes:
    key = text.strip()
    if not key:
        raise KeyFileError(str(path), "it is empty", hint)
    return key.encode()


def _exposure(info: os.stat_result, mask: int, access: str) -> str | None:
    """Why others could read or change this file or directory, or None."""
    if not _CHECK_MODES:
        return None
    if info.st_uid != os.geteuid():
        return f"it is owned by user id {info.st_uid}, not by this user ({os.geteuid()})"
    if info.st_mode & mask:
        return _mode_text(info, access)
    return None


def _mode_text(info: os.stat_result, access: str) -> str:
    return f"its mode is {stat.filemode(info.st_mode)}: {access} by other users"


def _chmod_hint(path: Path) -> str:
    return (
        f"a secret key must be private: `chmod 600 {path}` (and make sure it is yours), or "
        "if others may have read it, remove it and make a new key (records signed with the "
        "old one will no longer read)"
    )
