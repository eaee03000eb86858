"""`resume`, `status` and `list_executions`: executions by id, from any process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from resumable import _config
from resumable.errors import ExecutionLocked, ExecutionNotFound
from resumable.runtime import engine, identity
from resumable.stores.base import ExecutionRecord, ExecutionUpdate, Status, Store
from resumable.stores.codec import Codec


@dataclass(frozen=True, slots=True)
class LoopProgress:
    """How far one checkpointed loop got: `done` of `total` (None if unknown)."""

    position: str
    site: str
    location: str
    done: int
    total: int | None
    finished: bool


@dataclass(frozen=True, slots=True)
class ExecutionStatus:
    """A readable view of an execution record (times are Unix seconds)."""

    id: str
    name: str
    function: str
    location: str
    status: Status
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    owner: str | None
    lease_expires_at: float
    error: str | None
    progress: tuple[LoopProgress, ...] = ()

    @property
    def owner_description(self) -> str:
        return identity.describe(self.owner)


async def resume(
    execution_id: str,
    *,
    store: Store | str | None = None,
    on_code_change: engine.OnCodeChange = "error",
) -> Any:
    """Continue an unfinished execution from its last checkpoint (in this
    process) and return its result; a completed one returns its stored result.

    The function is found by its stored reference, so this works in a fresh
    process. Raises ExecutionNotFound, ExecutionLocked (a live process owns
    it), or CodeChangedError (per `on_code_change`).
    """
    settings = _config.settings(store, on_code_change)
    prepared = await engine.prepare_existing(execution_id, settings)
    if isinstance(prepared, engine.Finished):
        return prepared.result
    return await asyncio.get_running_loop().create_task(engine.run(prepared, settings))


async def cancel(execution_id: str, *, store: Store | str | None = None) -> None:
    """Cancel an execution at its next await; its checkpoints are kept and
    `resume` continues it. Running in this process: cancelled now, and this
    waits until it has stopped. Running elsewhere: its owner notices the
    request within about half a second. Owned by nobody (orphaned): marked
    cancelled here, so `recover()` leaves it alone.
    """
    task = engine.cancel_local(execution_id)
    if task is not None:
        await asyncio.wait([task])
        return
    settings = _config.settings(store)
    chosen = settings.store
    if not await chosen.request_cancel(execution_id):
        raise ExecutionNotFound(execution_id, chosen.url)
    record = await chosen.get(execution_id)
    if record is None or record.status != "running":
        return
    try:
        lease = await engine.acquire(chosen, record, settings.lease_ttl)
    except ExecutionLocked:
        return  # a live owner will see the request
    await chosen.update(lease, ExecutionUpdate(status="cancelled", finished_at=time.time()))
    await chosen.release(lease)


async def recover(
    *, store: Store | str | None = None, on_code_change: engine.OnCodeChange = "error"
) -> dict[str, Any]:
    """Resume, in this process, every execution whose owner is gone (its
    lease expired, or it was a process of this host that died): what a
    worker runs at start-up. Returns {execution_id: result, or the exception
    that ended it}; executions another live process owns are left alone."""
    settings = _config.settings(store, on_code_change)
    now = time.time()
    orphans = [
        record
        for record in await settings.store.list(status="running", limit=100_000)
        if record.id not in engine.running
        and (record.lease_expires_at <= now or identity.is_dead_local(record.owner))
    ]

    async def one(execution_id: str) -> Any:
        try:
            prepared = await engine.prepare_existing(execution_id, settings)
            if isinstance(prepared, engine.Finished):
                return prepared.result
            return await engine.run(prepared, settings)
        except ExecutionLocked as exc:  # another recoverer was faster
            return exc
        except Exception as exc:
            return exc

    outcomes = await asyncio.gather(*(one(record.id) for record in orphans))
    return {record.id: outcome for record, outcome in zip(orphans, outcomes, strict=True)}


async def status(execution_id: str, *, store: Store | str | None = None) -> ExecutionStatus:
    """The execution's record with per-loop progress. Raises ExecutionNotFound."""
    chosen = _config.resolve_store(store)
    record = await chosen.get(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id, chosen.url)
    checkpoints = await chosen.load(execution_id)
    return _view(record, _progress(execution_id, checkpoints, _config.codec()))


async def list_executions(
    *,
    store: Store | str | None = None,
    status: Status | None = None,
    function: str | None = None,
    limit: int = 100,
) -> list[ExecutionStatus]:
    """Executions newest first, optionally filtered by status and function
    (its reference "module:qualname" or its display name)."""
    chosen = _config.resolve_store(store)
    records = await chosen.list(status=status, function=function, limit=limit)
    if function is not None and not records:
        by_name = await chosen.list(status=status, limit=max(limit, 1000))
        records = [r for r in by_name if r.name == function][:limit]
    return [_view(record, ()) for record in records]


def _view(record: ExecutionRecord, progress: tuple[LoopProgress, ...]) -> ExecutionStatus:
    return ExecutionStatus(
        id=record.id,
        name=record.name,
        function=record.function,
        location=record.location,
        status=record.status,
        created_at=record.created_at,
        updated_at=record.updated_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        attempts=record.attempts,
        owner=record.owner,
        lease_expires_at=record.lease_expires_at,
        error=record.error_text,
        progress=progress,
    )


def _progress(
    execution_id: str, checkpoints: dict[str, bytes], codec: Codec
) -> tuple[LoopProgress, ...]:
    """Loop headers are plain data inside a (signed) blob: reading them never
    unpickles user values, so any process can show progress."""
    found = []
    for key, data in checkpoints.items():
        if "+" in key:  # delta records of append-only lists
            continue
        with contextlib.suppress(Exception):
            header = codec.loads(data, execution_id=execution_id, key=key)
            if isinstance(header, dict) and header.get("k") == "loop":
                found.append(
                    LoopProgress(
                        position=key,
                        site=str(header["s"]),
                        location=str(header["w"]),
                        done=int(header["i"]),
                        total=header["n"],
                        finished=bool(header["d"]),
                    )
                )
    return tuple(sorted(found, key=lambda p: p.position))
