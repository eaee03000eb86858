"""Execution management: resume, cancel, recover, status, list, and the snapshot `show` reads."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from resumable import _config
from resumable.errors import (
    ExecutionLocked,
    ExecutionNotFound,
    FormatVersionError,
    ResumableError,
    describe_owner,
)
from resumable.runtime import ids, wire
from resumable.runtime.registry import REGISTRY
from resumable.runtime.settings import OnCodeChange, Settings
from resumable.runtime.wire import (
    FanoutProgress,
    LoopProgress,
    Progress,
    read_progress,
)
from resumable.stores.base import EVERYTHING, ExecutionRecord, ExecutionUpdate, Store
from resumable.stores.statuses import Status


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
    fanouts: tuple[FanoutProgress, ...] = ()
    cancel_requested: bool = False
    parent_id: str | None = None  # set for a child execution: the one it was called in
    # Written without signing (by an older release, or a process without the
    # key) while this process signs: its records are refused until
    # `resumable migrate --sign ID` signs them (run it only on a store that
    # only you have written).
    unsigned: bool = False

    @property
    def owner_description(self) -> str:
        return describe_owner(self.owner)

    @property
    def orphaned(self) -> bool:
        """Running, but its owner is gone (lease expired, or a dead process
        of this host): `resume` or `recover` can take it over now."""
        return REGISTRY.is_orphan(self)


async def resume(
    execution_id: str,
    *,
    store: Store | str | None = None,
    on_code_change: OnCodeChange = "error",
) -> Any:
    """Continue an unfinished execution from its last checkpoint (in this
    process) and return its result; a completed one returns its stored result.

    The function is found by its stored reference, so this works in a fresh
    process. Raises ExecutionNotFound, ExecutionLocked (a live process owns
    it), or CodeChangedError (per `on_code_change`); ValueError for an
    invalid id (see README, "Execution ids").
    """
    ids.check(execution_id, "resume()")
    from resumable.runtime import engine  # not for reading: `list` and `status` skip it

    settings = _config.settings(store, on_code_change)
    started = await engine.start_or_resume(settings, execution_id=execution_id)
    return await started.outcome


async def cancel(execution_id: str, *, store: Store | str | None = None) -> None:
    """Cancel an execution at its next await; its checkpoints are kept and
    `resume` continues it. Running in this process: cancelled now, and this
    waits until it has stopped. Running elsewhere: its owner notices the
    request within about half a second. Owned by nobody (orphaned): marked
    cancelled here, so `recover()` leaves it alone.

    Its child executions that still run are cancelled with it, wherever they
    run (those awaited in the same process stop with it at once); resuming
    the parent resumes them.
    """
    ids.check(execution_id, "cancel()")
    here = REGISTRY.running.get(execution_id)
    settings = here.settings if here is not None else _config.settings(store)
    task = REGISTRY.cancel(execution_id)
    if task is not None:
        await asyncio.wait([task])
    else:
        await _cancel_elsewhere(execution_id, settings)
    for child in await settings.store.list(
        parent_id=execution_id, status="running", limit=EVERYTHING
    ):
        await cancel(child.id, store=settings.store)


async def _cancel_elsewhere(execution_id: str, settings: Settings) -> None:
    from resumable.runtime import engine

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
    *, store: Store | str | None = None, on_code_change: OnCodeChange = "error"
) -> dict[str, Any]:
    """Resume, in this process, every execution whose owner is gone (its
    lease expired, or it was a process of this host that died): what a
    worker runs at start-up. Returns {execution_id: result, or the exception
    that ended it}; executions another live process owns are left alone.

    A child execution whose parent is still running (live, or orphaned and
    recovered here now) is not resumed on its own: the parent's run resumes
    it when its replay reaches the call, so parent and child never run it
    twice at once. A child whose parent ended (or is gone) is resumed here.
    """
    settings = _config.settings(store, on_code_change)
    now = time.time()
    orphans = [
        record
        for record in await settings.store.list(status="running", limit=EVERYTHING)
        if REGISTRY.is_orphan(record, now) and not await _parent_runs(settings.store, record)
    ]

    from resumable.runtime import engine

    async def one(execution_id: str) -> Any:
        try:
            started = await engine.start_or_resume(settings, execution_id=execution_id)
            return await started.outcome
        except Exception as exc:  # ExecutionLocked: another recoverer was faster
            return exc

    outcomes = await asyncio.gather(*(one(record.id) for record in orphans))
    return {record.id: outcome for record, outcome in zip(orphans, outcomes, strict=True)}


async def _parent_runs(store: Store, record: ExecutionRecord) -> bool:
    if record.parent_id is None:
        return False
    parent = await store.get(record.parent_id)
    return parent is not None and parent.status == "running"


async def status(execution_id: str, *, store: Store | str | None = None) -> ExecutionStatus:
    """The execution's record with progress per loop and per amap/agather.
    Raises ExecutionNotFound (ValueError for an invalid id)."""
    ids.check(execution_id, "status()")
    return (await snapshot(execution_id, _config.resolve_store(store))).status


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One read of an execution, for viewers (`resumable show`). `parent`
    and `children` (oldest first) are read only when asked for: listing
    children scans the store's executions on Redis."""

    record: ExecutionRecord
    status: ExecutionStatus
    progress: Progress
    parent: ExecutionStatus | None = None
    children: tuple[ExecutionStatus, ...] | None = None


async def snapshot(execution_id: str, store: Store, *, relations: bool = False) -> Snapshot:
    record = await store.get(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id, store.url)
    live = record.status == "running" and not REGISTRY.is_orphan(record)
    signs = _signs(store)
    try:
        wire.check_version(execution_id, record.format)
    except FormatVersionError as exc:  # the record still shows; its progress cannot
        progress = Progress(unreadable=1, first_error=str(exc))
    else:
        # Headers only: what a viewer polls must not read every item's outcome.
        codec = _config.codec_for(store)
        version = record.format
        headers = await store.load_headers(execution_id)
        progress = read_progress(execution_id, headers, codec, live=live, format=version)
        if progress.needs_items:  # fan-out headers without exact counts: an older run's
            checkpoints = await store.load(execution_id)
            progress = read_progress(execution_id, checkpoints, codec, live=live, format=version)
    view = _view(record, progress, signs=signs)
    if not relations:
        return Snapshot(record, view, progress)
    parent = None if record.parent_id is None else await store.get(record.parent_id)
    children = await store.list(parent_id=execution_id, limit=EVERYTHING)
    return Snapshot(
        record,
        view,
        progress,
        parent=None if parent is None else _view(parent, signs=signs),
        children=tuple(_view(child, signs=signs) for child in reversed(children)),
    )


async def list_executions(
    *,
    store: Store | str | None = None,
    status: Status | None = None,
    function: str | None = None,
    parent_id: str | None = None,
    limit: int = 100,
) -> list[ExecutionStatus]:
    """Executions newest first, optionally filtered by status, function (its
    reference "module:qualname" or its display name) and parent (the child
    executions of `parent_id`)."""
    chosen = _config.resolve_store(store)
    records = await chosen.list(status=status, function=function, parent_id=parent_id, limit=limit)
    if function is not None and not records:
        by_name = await chosen.list(status=status, parent_id=parent_id, limit=max(limit, 1000))
        records = [r for r in by_name if r.name == function][:limit]
    signs = _signs(chosen)
    return [_view(record, signs=signs) for record in records]


def _signs(store: Store) -> bool:
    """Whether this process signs `store`'s records, and so refuses unsigned ones."""
    try:
        return _config.codec_for(store).signed
    except (ValueError, ResumableError):  # no usable key: every read says so itself
        return False


def _view(
    record: ExecutionRecord, progress: Progress | None = None, *, signs: bool = False
) -> ExecutionStatus:
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
        error=record.error_text or None,  # "": cleared by a later successful attempt
        progress=progress.loops if progress else (),
        fanouts=progress.fanouts if progress else (),
        cancel_requested=record.cancel_requested,
        parent_id=record.parent_id,
        # The arguments are written first, signed whenever anything is: an
        # unsigned one says the whole execution was written without a key.
        unsigned=signs and record.args[:1] != b"s",
    )
