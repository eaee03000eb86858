"""resumable: asyncio loops that survive crashes.

Decorate an `async def` with `@resumable`, iterate with
`aiter_checkpointed(...)`, and after a crash `await resume(execution_id)`
continues from the last finished iteration, in any process.
"""

from __future__ import annotations

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
    NonDeterminismError,
    RecordTooLarge,
    ResumableError,
    SecretKeyRequired,
    StoreDamaged,
    StorePermissionDenied,
    StoreReadOnly,
    StoreUnavailable,
    UnsupportedBytecode,
)
from resumable.runtime.events import subscribe
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
    "NonDeterminismError",
    "RecordTooLarge",
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
