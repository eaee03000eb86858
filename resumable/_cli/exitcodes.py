"""The exit codes of the `resumable` command, defined once.

The README's table is checked against `MEANINGS` by tests/test_cli.py, so
the two cannot drift apart. Scripts can rely on them:

    resumable show "$ID" --follow && deploy-the-report   # 0 only if it completed
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    EXECUTION_FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    LOCKED = 4
    STORE_UNAVAILABLE = 5
    CODE_CHANGED = 6
    CORRUPT = 7
    NOT_IMPORTABLE = 8
    STORE_DAMAGED = 9
    PERMISSION_DENIED = 10
    NO_SECRET_KEY = 11
    INTERRUPTED = 130


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success (`show --follow`, `resume`: the execution completed)",
    ExitCode.EXECUTION_FAILED: "the execution failed or was cancelled (`resume`, "
    "`show --follow`, `recover`: one of them)",
    ExitCode.USAGE: "bad arguments or a bad store URL",
    ExitCode.NOT_FOUND: "no execution with that id in the store",
    ExitCode.LOCKED: "a live process owns the execution (its lease has not expired)",
    ExitCode.STORE_UNAVAILABLE: "the store cannot be opened or reached (for now: retry later)",
    ExitCode.CODE_CHANGED: "the code changed since the execution started (see `--on-code-change`)",
    ExitCode.CORRUPT: "a record failed its signature check or cannot be decoded",
    ExitCode.NOT_IMPORTABLE: "the execution's function cannot be imported in this process",
    ExitCode.STORE_DAMAGED: "the store's file is damaged (restore a backup, or salvage it "
    "with `sqlite3 FILE .recover`)",
    ExitCode.PERMISSION_DENIED: "permission denied: the store cannot be read, or it is read-only "
    "and the command writes",
    ExitCode.NO_SECRET_KEY: "no usable secret key: the store is shared (Redis) and no key is "
    "configured, or a key file was refused (see Security)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def for_error(error: BaseException) -> ExitCode:
    """The exit code for an error of `resumable` (or EXECUTION_FAILED for
    anything else: the user's own exception ended the execution)."""
    from resumable.errors import (  # not at import: `resumable --help` needs none of them
        CodeChangedError,
        CorruptCheckpoint,
        ExecutionLocked,
        ExecutionNotFound,
        KeyFileError,
        NonDeterminismError,
        SecretKeyRequired,
        StoreDamaged,
        StorePermissionDenied,
        StoreUnavailable,
    )

    if isinstance(error, ExecutionNotFound):
        return ExitCode.NOT_FOUND
    if isinstance(error, ExecutionLocked):  # LeaseLost too
        return ExitCode.LOCKED
    if isinstance(error, StoreDamaged):
        return ExitCode.STORE_DAMAGED
    if isinstance(error, StorePermissionDenied):  # StoreReadOnly too
        return ExitCode.PERMISSION_DENIED
    if isinstance(error, StoreUnavailable):
        return ExitCode.STORE_UNAVAILABLE
    if isinstance(error, CodeChangedError | NonDeterminismError):
        return ExitCode.CODE_CHANGED
    if isinstance(error, CorruptCheckpoint):
        return ExitCode.CORRUPT
    if isinstance(error, SecretKeyRequired | KeyFileError):
        return ExitCode.NO_SECRET_KEY
    # ExecutionCancelled, CheckpointError, and the user's own exceptions.
    return ExitCode.EXECUTION_FAILED


def epilog() -> str:
    """The table for `resumable --help`, and where the default key is (its
    path only: nothing is created, or even read, to print help)."""
    from resumable._keypath import default_key_path

    lines = ["exit codes:"]
    lines.extend(f"  {int(code):>3}  {text.replace('`', '')}" for code, text in MEANINGS.items())
    lines.append("")
    lines.append(
        f"secret key: records of local (SQLite) stores are signed with {default_key_path()}\n"
        "(made on first use) unless RESUMABLE_SECRET_KEY or RESUMABLE_SECRET_KEY_FILE is set;\n"
        "Redis stores need one of those (see `resumable keygen --help`)."
    )
    return "\n".join(lines)


class CommandError(Exception):
    """A one-line message for the user and the exit code to leave with."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
