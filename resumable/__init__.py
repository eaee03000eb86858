"""resumable: asyncio loops that survive crashes.

Decorate an `async def` with `@resumable`, iterate with
`aiter_checkpointed(...)`, and after a crash `await resume(execution_id)`
continues from the last finished iteration, in any process.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from resumable import _lazy

if any(name.startswith("RESUMABLE_FAULT_") for name in os.environ):
    # Fault injection (runtime/faults.py) reads its variables when imported:
    # a bad value is refused at `import resumable`, not at the first write.
    importlib.import_module("resumable.runtime.faults")

if TYPE_CHECKING:  # the names, for type checkers and editors; at run time see __getattr__
    from resumable._checkpointed import aiter_checkpointed
    from resumable._config import configure
    from resumable._decorator import BoundResumable, Execution, ResumableFunction, resumable
    from resumable._executions import (
        ExecutionStatus,
        cancel,
        list_executions,
        recover,
        resume,
        status,
    )
    from resumable._fanout import AMap, agather, amap
    from resumable._gc import Compacted, GcReport, gc
    from resumable._journal import Current, current, now, random, sleep, uuid4
    from resumable._migrate import MigrationReport, sign_unsigned
    from resumable._step import Step, step
    from resumable.errors import (
        CarryAuditError,
        CheckpointError,
        CodeChangedError,
        CorruptCheckpoint,
        ExecutionCancelled,
        ExecutionLocked,
        ExecutionNotFound,
        FormatVersionError,
        KeyFileError,
        LeaseLost,
        LoopShapeError,
        ModuleRunsOnImport,
        NonDeterminismError,
        RecordTooLarge,
        ReplayedFailure,
        ResumableError,
        SecretKeyRequired,
        StoreDamaged,
        StorePermissionDenied,
        StoreReadOnly,
        StoreUnavailable,
        UnsupportedBytecode,
    )
    from resumable.events import subscribe
    from resumable.runtime.loop import AUTO
    from resumable.runtime.retry import Retry
    from resumable.runtime.wire import FanoutProgress, LoopProgress
    from resumable.stores import MemoryStore, SQLiteStore, Store, open_store

__all__ = [
    "AMap",
    "AUTO",
    "BoundResumable",
    "CarryAuditError",
    "CheckpointError",
    "CodeChangedError",
    "Compacted",
    "CorruptCheckpoint",
    "Current",
    "Execution",
    "ExecutionCancelled",
    "ExecutionLocked",
    "ExecutionNotFound",
    "ExecutionStatus",
    "FanoutProgress",
    "FormatVersionError",
    "GcReport",
    "KeyFileError",
    "LeaseLost",
    "LoopProgress",
    "LoopShapeError",
    "MemoryStore",
    "MigrationReport",
    "ModuleRunsOnImport",
    "NonDeterminismError",
    "RecordTooLarge",
    "ReplayedFailure",
    "ResumableError",
    "ResumableFunction",
    "Retry",
    "SQLiteStore",
    "SecretKeyRequired",
    "Step",
    "Store",
    "StoreDamaged",
    "StorePermissionDenied",
    "StoreReadOnly",
    "StoreUnavailable",
    "UnsupportedBytecode",
    "agather",
    "aiter_checkpointed",
    "amap",
    "cancel",
    "configure",
    "current",
    "gc",
    "list_executions",
    "now",
    "open_store",
    "random",
    "recover",
    "resumable",
    "resume",
    "sign_unsigned",
    "sleep",
    "status",
    "step",
    "subscribe",
    "uuid4",
]

# Where each public name lives. Imported on first use (PEP 562), so that
# `import resumable` costs next to nothing: the command line's `--help` and
# `list` need a sliver of the library, and a program pays for what it uses.
_HOMES: dict[str, str] = {
    "AMap": "resumable._fanout",
    "AUTO": "resumable.runtime.loop",
    "BoundResumable": "resumable._decorator",
    "CarryAuditError": "resumable.errors",
    "CheckpointError": "resumable.errors",
    "CodeChangedError": "resumable.errors",
    "Compacted": "resumable._gc",
    "CorruptCheckpoint": "resumable.errors",
    "Current": "resumable._journal",
    "Execution": "resumable._decorator",
    "ExecutionCancelled": "resumable.errors",
    "ExecutionLocked": "resumable.errors",
    "ExecutionNotFound": "resumable.errors",
    "ExecutionStatus": "resumable._executions",
    "FanoutProgress": "resumable.runtime.wire",
    "FormatVersionError": "resumable.errors",
    "GcReport": "resumable._gc",
    "KeyFileError": "resumable.errors",
    "LeaseLost": "resumable.errors",
    "LoopProgress": "resumable.runtime.wire",
    "LoopShapeError": "resumable.errors",
    "MemoryStore": "resumable.stores",
    "MigrationReport": "resumable._migrate",
    "ModuleRunsOnImport": "resumable.errors",
    "NonDeterminismError": "resumable.errors",
    "RecordTooLarge": "resumable.errors",
    "ReplayedFailure": "resumable.errors",
    "ResumableError": "resumable.errors",
    "ResumableFunction": "resumable._decorator",
    "Retry": "resumable.runtime.retry",
    "SQLiteStore": "resumable.stores",
    "SecretKeyRequired": "resumable.errors",
    "Step": "resumable._step",
    "Store": "resumable.stores",
    "StoreDamaged": "resumable.errors",
    "StorePermissionDenied": "resumable.errors",
    "StoreReadOnly": "resumable.errors",
    "StoreUnavailable": "resumable.errors",
    "UnsupportedBytecode": "resumable.errors",
    "agather": "resumable._fanout",
    "aiter_checkpointed": "resumable._checkpointed",
    "amap": "resumable._fanout",
    "cancel": "resumable._executions",
    "configure": "resumable._config",
    "current": "resumable._journal",
    "gc": "resumable._gc",
    "list_executions": "resumable._executions",
    "now": "resumable._journal",
    "open_store": "resumable.stores",
    "random": "resumable._journal",
    "recover": "resumable._executions",
    "resumable": "resumable._decorator",
    "resume": "resumable._executions",
    "sign_unsigned": "resumable._migrate",
    "sleep": "resumable._journal",
    "status": "resumable._executions",
    "step": "resumable._step",
    "subscribe": "resumable.events",
    "uuid4": "resumable._journal",
}


__getattr__ = _lazy.attributes(globals(), _HOMES)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
