"""resumable: asyncio loops that survive crashes.

Decorate an `async def` with `@resumable`, iterate with
`aiter_checkpointed(...)`, and after a crash `await resume(execution_id)`
continues from the last finished iteration, in any process.
"""

from __future__ import annotations

from resumable._api import ExecutionStatus, LoopProgress, list_executions, resume, status
from resumable._config import configure
from resumable._decorator import Execution, ResumableFunction, resumable
from resumable._helpers import aiter_checkpointed
from resumable.errors import (
    CheckpointError,
    CodeChangedError,
    CorruptCheckpoint,
    ExecutionCancelled,
    ExecutionLocked,
    ExecutionNotFound,
    LeaseLost,
    NonDeterminismError,
    ResumableError,
    StoreUnavailable,
)
from resumable.runtime.loop import AUTO
from resumable.stores import MemoryStore, SQLiteStore, Store, open_store

__all__ = [
    "AUTO",
    "CheckpointError",
    "CodeChangedError",
    "CorruptCheckpoint",
    "Execution",
    "ExecutionCancelled",
    "ExecutionLocked",
    "ExecutionNotFound",
    "ExecutionStatus",
    "LeaseLost",
    "LoopProgress",
    "MemoryStore",
    "NonDeterminismError",
    "ResumableError",
    "ResumableFunction",
    "SQLiteStore",
    "Store",
    "StoreUnavailable",
    "aiter_checkpointed",
    "configure",
    "list_executions",
    "open_store",
    "resumable",
    "resume",
    "status",
]
