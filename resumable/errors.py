"""Every error `resumable` raises on purpose.

A leaf module: it imports nothing else from the package, so any module (and
any process that unpickles a stored failure) can import it cheaply. Each class
builds its message from its constructor arguments, keeps them as attributes,
and pickles by those arguments, because failures are stored with executions.
Most classes are dataclasses (`@_error`) so that each argument is written
once, as a field.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any, TypeVar, dataclass_transform

__all__ = [
    "CarryAuditError",
    "CheckpointError",
    "CodeChangedError",
    "CorruptCheckpoint",
    "ExecutionCancelled",
    "ExecutionLocked",
    "ExecutionNotFound",
    "FormatVersionError",
    "KeyFileError",
    "LeaseLost",
    "LoopShapeError",
    "ModuleRunsOnImport",
    "NonDeterminismError",
    "RecordTooLarge",
    "ReplayedFailure",
    "ResumableError",
    "SecretKeyRequired",
    "StoreDamaged",
    "StorePermissionDenied",
    "StoreReadOnly",
    "StoreUnavailable",
    "UnsupportedBytecode",
]


class ResumableError(Exception):
    """Base class of every error raised by `resumable` itself.

    The user's own exceptions are never wrapped in it: they pass through.

    A subclass is an `@_error` dataclass whose fields are its constructor's
    arguments, or writes an `__init__` that keeps its arguments as
    attributes and passes them to `ResumableError.__init__` (a subclass
    whose arguments differ from its base's). Either way `_message()` builds
    the text and the arguments are what the error pickles by.
    """

    def __init__(self, *args: Any) -> None:
        self._args = args
        super().__init__(self._message())

    def __post_init__(self) -> None:  # after the __init__ that @_error writes
        ResumableError.__init__(self, *(getattr(self, f.name) for f in _fields(self)))

    def _message(self) -> str:
        return " ".join(str(a) for a in self._args)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._args)


def _fields(error: ResumableError) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(error)  # type: ignore[arg-type]  # an @_error class's


E = TypeVar("E", bound=ResumableError)


@dataclass_transform(eq_default=False)
def _error(cls: type[E]) -> type[E]:
    """An error class as a dataclass: its fields are the constructor's
    arguments. No __eq__ (errors compare by identity, and stay hashable) and
    Exception's own repr."""
    return dataclasses.dataclass(eq=False, repr=False)(cls)


@_error
class ExecutionNotFound(ResumableError):
    """No execution with this id exists in the store."""

    execution_id: str
    store: str

    def _message(self) -> str:
        return (
            f"no execution {self.execution_id!r} in store {self.store}. "
            "HINT: check the id (`resumable list`) and that RESUMABLE_STORE or --store "
            "points at the store the run used."
        )


def describe_owner(owner: str | None) -> str:
    """An owner as messages show it: "host:pid:start" (how this library
    records owners) as "host pid 1234"; anything else (a store someone else
    wrote) as it is."""
    if not owner:
        return "nobody"
    parts = owner.split(":")
    if len(parts) == 3 and parts[1].isdigit():
        return f"{parts[0]} pid {parts[1]}"
    return owner


@_error
class ExecutionLocked(ResumableError):
    """A live process owns the execution; only one may run it at a time."""

    execution_id: str
    owner: str
    expires_in: float

    def _message(self) -> str:
        return (
            f"execution {self.execution_id!r} is owned by {describe_owner(self.owner)}, "
            f"whose lease expires in {self.expires_in:.1f}s. HINT: wait for that process to "
            "finish, or, if it is dead, resume again once the lease has expired."
        )


class LeaseLost(ExecutionLocked):
    """This process's lease was taken over; its writes are refused (fencing)."""

    def _message(self) -> str:
        return (
            f"this process no longer owns execution {self.execution_id!r}: "
            f"{describe_owner(self.owner)} took it over after our lease expired (was this "
            "process paused?). Our writes are refused so that the new owner's checkpoints "
            "stay intact; nothing was lost."
        )


@_error
class ExecutionCancelled(ResumableError):
    """The execution was cancelled; its checkpoints are kept and it can be resumed."""

    execution_id: str

    def _message(self) -> str:
        return (
            f"execution {self.execution_id!r} was cancelled; its checkpoints are kept. "
            f"HINT: `await resume({self.execution_id!r})` continues it."
        )


@_error
class CodeChangedError(ResumableError):
    """The function's bytecode differs from the one that started the execution."""

    execution_id: str
    function: str
    location: str
    changes: str

    def _message(self) -> str:
        return (
            f"the code of {self.function} ({self.location}) changed since execution "
            f"{self.execution_id!r} started: {self.changes}. Its checkpoints may not line up "
            "with the new code. HINT: pass on_code_change='continue' to go on when every "
            "recorded loop and step still lines up, or 'restart' to discard the checkpoints "
            "and run from the start."
        )


@_error
class NonDeterminismError(ResumableError):
    """Replay reached a different helper or step than was recorded at that
    position, or a loop's iterable gives its items in another order."""

    execution_id: str
    position: str
    recorded: str
    reached: str
    hint: str | None = None

    def _message(self) -> str:
        hint = self.hint or (
            "the code path before this point must be deterministic; move clocks, "
            "randomness and I/O into steps (resumable.now(), resumable.random(), @step)"
        )
        return (
            f"replay of execution {self.execution_id!r} diverged at {self.position}: the "
            f"record there is {self.recorded}, but the code now reaches {self.reached}. "
            f"HINT: {hint}."
        )


@_error
class CheckpointError(ResumableError):
    """A value could not be checkpointed, or a loop's local can neither be
    carried nor proven safe to leave out; the previous checkpoint is untouched.

    `hint` replaces the default advice (about carried variables): what is
    safe now and what to do (an argument, `self` of a method, a refused local).
    """

    where: str
    variable: str
    type_name: str
    reason: str
    hint: str | None = None

    def _message(self) -> str:
        advice = self.hint or (
            "The previous checkpoint is intact. HINT: keep only plain data "
            "or picklable objects in carried variables, name the carried ones with "
            "carry=(...) or leave this one out with ignore=(...), or create it inside "
            "the loop body."
        )
        return (
            f"cannot checkpoint {self.variable!r} (type {self.type_name}) at {self.where}: "
            f"{self.reason}. {advice}"
        )


class RecordTooLarge(CheckpointError, ValueError):
    """A record (a checkpoint, an argument or a result) is over the store's
    `max_record_bytes`; nothing of its write was stored. Also a ValueError,
    what releases before it raised."""

    def __init__(self, execution_id: str, key: str, size: int, limit: int) -> None:
        self.execution_id = execution_id
        self.key = key
        self.size = size
        self.limit = limit
        ResumableError.__init__(self, execution_id, key, size, limit)

    def _message(self) -> str:
        return (
            f"record {self.key!r} of execution {self.execution_id!r} is {self.size:,} bytes, "
            f"over the store's limit of {self.limit:,} bytes (max_record_bytes); nothing was "
            "written. HINT: checkpoint less per record (e.g. return a reference to large data "
            "instead of the data), or raise max_record_bytes."
        )


class UnsupportedBytecode(CheckpointError):
    """The bytecode analysis met an instruction (or a CPython) it does not
    model, so it cannot tell what the loop carries: it refuses rather than
    guess."""

    def __init__(self, where: str, opcode: str, detail: str) -> None:
        self.opcode = opcode
        self.detail = detail
        super().__init__(
            where,
            "the loop's locals",
            opcode,
            f"the bytecode analysis does not model {opcode} ({detail}), so it cannot tell "
            "which locals the loop body changes",
            "Nothing was written. HINT: name the carried locals yourself with carry=(...), "
            "or report this with your Python version.",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.where, self.opcode, self.detail))


@_error
class LoopShapeError(ResumableError):
    """`aiter_checkpointed` is used where it cannot serve (not directly the
    iterable of an `async for`, a comprehension, concurrent loops in one
    scope...)."""

    where: str
    problem: str
    fix: str

    def _message(self) -> str:
        return f"aiter_checkpointed() at {self.where}: {self.problem}. HINT: {self.fix}."


@_error
class ReplayedFailure(ResumableError):
    """Raised on replay in place of a step's or item's exception that could
    not be pickled when it was recorded: its type name and message are all
    that was kept."""

    type_name: str
    message: str

    def _message(self) -> str:
        return f"{self.type_name}: {self.message} (recorded; the original could not be pickled)"


@_error
class CarryAuditError(ResumableError):
    """The carry audit (configure(audit_carry=True)) found a local that
    changed without being carried, or a delta that does not rebuild its value."""

    where: str
    variable: str
    what: str

    def _message(self) -> str:
        return (
            f"carry audit: at {self.where}, {self.variable!r} {self.what}. A resume from "
            "this checkpoint would not give the uninterrupted result. HINT: name it in "
            "carry=(...) (or, if its changes do not matter, in ignore=(...)), and report "
            "the loop: the analysis should have seen this."
        )


@_error
class CorruptCheckpoint(ResumableError):
    """A stored record failed its signature check or could not be decoded."""

    execution_id: str
    key: str
    reason: str
    hint: str | None = None

    def _message(self) -> str:
        hint = self.hint or (
            "check RESUMABLE_SECRET_KEY matches the key the run was written with; a "
            "record that was tampered with cannot be trusted"
        )
        return (
            f"refusing record {self.key!r} of execution {self.execution_id!r}: {self.reason}. "
            f"The record was not used. HINT: {hint}."
        )


@_error
class FormatVersionError(ResumableError):
    """An execution was written in a record format this release cannot read."""

    execution_id: str
    found: int
    supported: int

    def _message(self) -> str:
        return (
            f"execution {self.execution_id!r} was written in record format {self.found}, "
            f"newer than format {self.supported}, the newest this release of resumable "
            "reads. Nothing was changed. HINT: resume it with the release that wrote it, "
            "or upgrade resumable (pip install -U resumable-runtime)."
        )


@_error
class StoreUnavailable(ResumableError):
    """The store could not be reached, even after retrying with backoff."""

    store: str
    operation: str
    reason: str

    def _message(self) -> str:
        return (
            f"store {self.store} is unavailable while {self.operation}: {self.reason}. "
            "Acknowledged checkpoints are safe. HINT: once the store is back, resume the "
            "execution."
        )


class _StoreFileError(StoreUnavailable):
    """A StoreUnavailable that names the store's file: the SQLite errors
    that retrying will not mend."""

    def __init__(self, store: str, path: str, operation: str, reason: str) -> None:
        self.store = store
        self.path = path
        self.operation = operation
        self.reason = reason
        ResumableError.__init__(self, store, path, operation, reason)


class StoreDamaged(_StoreFileError):
    """The store's file is damaged (SQLite: "database disk image is
    malformed", "file is not a database"). Unlike its base class this is
    not transient: retrying will not help, the file must be repaired."""

    def _message(self) -> str:
        return (
            f"the store file {self.path} is damaged ({self.reason}, while {self.operation}); "
            "resumable does not repair it. HINT: restore it from a backup, or salvage what "
            f"is readable with `sqlite3 {shlex.quote(self.path)} .recover | sqlite3 "
            "recovered.db` and point --store or RESUMABLE_STORE at the recovered file."
        )


class StorePermissionDenied(_StoreFileError):
    """This process may not read the store (or, for `StoreReadOnly`, write
    it): a permission of the file or of a directory on its path. Not
    transient: retrying will not help."""

    def _message(self) -> str:
        return (
            f"permission denied: cannot open the store file {self.path} while "
            f"{self.operation}: {self.reason}. HINT: check the permissions of the file and "
            "of every directory above it (`ls -ld`), or run as the user who owns the store."
        )


class StoreReadOnly(StorePermissionDenied):
    """The store can be read but not written (a read-only file or directory,
    or a read-only file system): listing and showing work, running does not."""

    def _message(self) -> str:
        return (
            f"the store {self.path} is read-only ({self.reason}); writing to it failed while "
            f"{self.operation} and nothing was written. HINT: `resumable list` and `show` "
            "still read it; to run or resume, make the file and its directory writable "
            "for this user (SQLite creates its -wal and -shm files beside the file), or "
            "copy the file somewhere writable and use that copy."
        )


@_error
class SecretKeyRequired(ResumableError):
    """A store others can write (Redis, or a store of unknown kind) would get
    unsigned records: no secret key is configured and unsigned records were
    not explicitly allowed. Raised before anything is written or read."""

    store: str

    def _message(self) -> str:
        return (
            f"no secret key: records in {self.store} would be unsigned, and anyone who can "
            "write to that server could run code in this process. HINT: make a key with "
            "`resumable keygen` and give the same key to every process that uses the store "
            "(RESUMABLE_SECRET_KEY, or RESUMABLE_SECRET_KEY_FILE naming a file that holds it); "
            "or accept the risk with RESUMABLE_ALLOW_UNSIGNED=1 / configure(allow_unsigned=True)."
        )


@_error
class KeyFileError(ResumableError):
    """A secret key file (the per-user default, or RESUMABLE_SECRET_KEY_FILE)
    cannot be used: unreadable, empty, or open to other users. Nothing falls
    back to unsigned records."""

    path: str
    reason: str
    hint: str

    def _message(self) -> str:
        return f"refusing the secret key file {self.path}: {self.reason}. HINT: {self.hint}."


class ModuleRunsOnImport(ResumableError, ImportError):
    """Importing the module that defines a @resumable function (to resume it
    in a new process) ran an event loop: the script starts its work at its
    top level instead of under an `if __name__ == "__main__":` guard."""

    def __init__(self, module: str, function: str, reason: str) -> None:
        self.module = module
        self.function = function
        self.reason = reason
        super().__init__(module, function, reason)

    def _message(self) -> str:
        return (
            f"importing {self.module} to find {self.function} ran the script's own work "
            f"({self.reason}): it calls asyncio.run(...) at its top level, so loading it "
            "again would start the script again, inside the running event loop. HINT: put "
            "the script's entry under a main guard, so that importing it only defines "
            'functions:\n\n    if __name__ == "__main__":\n        asyncio.run(main())\n'
        )
