"""Start, resume and finish executions.

An execution runs in a task of its own with a copied context, so that the
execution's contextvars never leak into the caller. While it runs, a
background task renews its lease; if the lease is lost (another process took
over after it expired), the run is cancelled and `LeaseLost` is raised.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from resumable.errors import (
    CheckpointError,
    CodeChangedError,
    ExecutionCancelled,
    ExecutionLocked,
    ExecutionNotFound,
    LeaseLost,
    StoreUnavailable,
)
from resumable.runtime import events, faults, fingerprint, identity, references
from resumable.runtime.context import ExecutionContext, enter_execution
from resumable.stores.base import ExecutionRecord, ExecutionUpdate, Lease, Store
from resumable.stores.codec import Codec, UnserializableValue

OnCodeChange = Literal["error", "continue", "restart"]
ON_CODE_CHANGE: tuple[OnCodeChange, ...] = ("error", "continue", "restart")

log = structlog.get_logger("resumable")

CANCEL_POLL = 0.5  # seconds between checks for a cancel requested elsewhere

# Executions this process is running now: id -> (context, task).
running: dict[str, tuple[ExecutionContext, asyncio.Task[Any]]] = {}
# Executions whose lease this process holds, from acquiring it until its run
# ends. A lease recorded for this process but not held here is left over from
# a run of ours that died (StoreUnavailable, a simulated crash): it is dead.
held: set[str] = set()


@dataclass(frozen=True, slots=True)
class Target:
    """The user's coroutine function and what identifies it in the store."""

    function: Callable[..., Awaitable[Any]]
    reference: str
    name: str
    location: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Settings:
    store: Store
    codec: Codec
    lease_ttl: float
    on_code_change: OnCodeChange


@dataclass(slots=True)
class Prepared:
    """An execution ready to run in this process (we hold its lease)."""

    target: Target
    record: ExecutionRecord
    lease: Lease
    records: dict[str, bytes]
    resumed: bool
    restart: bool
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finished:
    """The execution had already completed: here is its stored result."""

    execution_id: str
    result: Any


def new_execution_id() -> str:
    return uuid.uuid4().hex


async def prepare_new(
    target: Target,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    execution_id: str | None,
    settings: Settings,
) -> Prepared | Finished:
    """Create the execution, or, when the id exists (an idempotency key),
    return its stored result or take it over to resume it."""
    execution_id = execution_id or new_execution_id()
    try:
        blob = settings.codec.dumps((args, kwargs), execution_id=execution_id, key="arguments")
    except UnserializableValue as exc:
        raise CheckpointError(
            f"the call of {target.name}", "arguments", "tuple", exc.reason
        ) from None
    now = time.time()
    record = ExecutionRecord(
        id=execution_id,
        function=target.reference,
        name=target.name,
        args=blob,
        fingerprint=target.fingerprint,
        location=target.location,
        created_at=now,
        updated_at=now,
    )
    lease = await settings.store.create(record, identity.this_owner(), settings.lease_ttl)
    if lease is not None:
        held.add(record.id)
        return Prepared(
            target, record, lease, {}, resumed=False, restart=False, args=args, kwargs=kwargs
        )
    return await prepare_existing(record.id, settings, target)


async def prepare_existing(
    execution_id: str, settings: Settings, target: Target | None = None
) -> Prepared | Finished:
    store, codec = settings.store, settings.codec
    record = await store.get(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id, store.url)
    if record.status == "completed":
        return Finished(execution_id, _decode_result(record, codec))
    target = target or resolve_target(record)
    lease = await acquire(store, record, settings.lease_ttl)
    restart = False
    if not fingerprint.same(record.fingerprint, target.fingerprint):
        if settings.on_code_change == "error":
            await store.release(lease)
            held.discard(execution_id)
            raise CodeChangedError(
                execution_id,
                record.function,
                target.location,
                fingerprint.describe_change(record.fingerprint, target.fingerprint),
            )
        restart = settings.on_code_change == "restart"
    args, kwargs = codec.loads(record.args, execution_id=execution_id, key="arguments")
    checkpoints = {} if restart else await store.load(execution_id)
    return Prepared(
        target,
        record,
        lease,
        checkpoints,
        resumed=True,
        restart=restart,
        args=tuple(args),
        kwargs=dict(kwargs),
    )


# Every @resumable function defined in this process, by reference (the
# latest definition wins, as when a notebook cell is run again). Lets a
# process resume functions it defined locally, which no import could find.
defined: dict[str, Target] = {}


def resolve_target(record: ExecutionRecord) -> Target:
    known = defined.get(record.function)
    if known is not None:
        return known
    found = references.resolve(record.function, record.location)
    target = getattr(found, "target", None)
    if not isinstance(target, Target):
        raise TypeError(f"{record.function} is not a @resumable function")
    return target


async def acquire(store: Store, record: ExecutionRecord, ttl: float) -> Lease:
    owner = identity.this_owner()
    try:
        lease = await store.acquire(record.id, owner, ttl)
    except ExecutionLocked:
        ours_but_dead = record.owner == owner and record.id not in held
        if not (ours_but_dead or identity.is_dead_local(record.owner)):
            raise
        # The owner is gone (a dead process of this host, or a dead run of
        # this one): take over at once rather than wait for the lease to
        # expire. steal_token makes this a compare-and-set, so a concurrent
        # taker cannot also win.
        lease = await store.acquire(record.id, owner, ttl, steal_token=record.lease_token)
    held.add(record.id)
    return lease


async def run(prepared: Prepared, settings: Settings) -> Any:
    """Run the execution to its end in a task of its own and record the outcome."""
    store = settings.store
    record, lease = prepared.record, prepared.lease
    lease_update = ExecutionUpdate(
        status="running",
        started_at=time.time(),
        attempts=record.attempts + 1,
        fingerprint=prepared.target.fingerprint,
        clear_checkpoints=prepared.restart,
        cancel_requested=False,
    )
    await store.update(lease, lease_update)
    context = ExecutionContext(
        execution_id=record.id,
        store=store,
        lease=lease,
        codec=settings.codec,
        records=prepared.records,
        resumed=prepared.resumed,
    )
    began = time.time()
    if prepared.resumed:
        events.record(
            events.ExecutionResumed,
            record.id,
            function=record.name,
            attempt=record.attempts + 1,
            checkpoints=len(prepared.records),
        )
    else:
        events.record(events.ExecutionStarted, record.id, function=record.name)

    async def body() -> Any:
        enter_execution(context)
        return await prepared.target.function(*prepared.args, **prepared.kwargs)

    # A fresh copy of the caller's context: nothing the run sets leaks back.
    task = asyncio.get_running_loop().create_task(body(), context=contextvars.copy_context())
    lost: list[LeaseLost] = []
    watcher = asyncio.get_running_loop().create_task(
        _watch(context, settings.lease_ttl, task, lost)
    )
    running[record.id] = (context, task)
    try:
        result = await task
    except faults.SimulatedCrash as crash:
        crash.lease = context.lease  # a killed process records nothing
        raise
    except asyncio.CancelledError:
        if lost:
            raise lost[0] from None
        await _finish(context, "cancelled", None, None)
        events.record(
            events.ExecutionCancelled, record.id, function=record.name, seconds=time.time() - began
        )
        if context.cancel_requested:  # cancel(id): the caller was not cancelled
            raise ExecutionCancelled(record.id) from None
        raise
    except LeaseLost:
        raise
    except StoreUnavailable:
        # The store gave up on us: recording "failed" there would fail too,
        # after retrying as long again, and hide this error behind its own.
        # The execution stays "running" under a lease that runs out, so
        # recover() (or resume) continues it from its last checkpoint.
        raise
    except Exception as exc:
        await _finish(context, "failed", None, exc)
        _failed(record, began, exc)
        raise
    finally:
        running.pop(record.id, None)
        held.discard(record.id)
        watcher.cancel()
        for shared in context.memo.values():  # memoized calls nobody waits for now
            shared.cancel()
    try:
        blob = settings.codec.dumps(result, execution_id=record.id, key="result")
    except UnserializableValue as exc:
        error = CheckpointError(
            f"the return of {record.name}", "return value", type(result).__name__, exc.reason
        )
        await _finish(context, "failed", None, error)
        _failed(record, began, error)
        raise error from None
    await _finish(context, "completed", blob, None)
    events.record(
        events.ExecutionCompleted, record.id, function=record.name, seconds=time.time() - began
    )
    return result


def _failed(record: ExecutionRecord, began: float, error: BaseException) -> None:
    events.record(
        events.ExecutionFailed,
        record.id,
        function=record.name,
        seconds=time.time() - began,
        error=type(error).__name__,
    )


async def _finish(
    context: ExecutionContext,
    status: Literal["completed", "failed", "cancelled"],
    result: bytes | None,
    error: BaseException | None,
) -> None:
    error_blob = error_text = None
    if error is not None:
        error_text = "".join(traceback.format_exception(error))
        try:
            error_blob = context.codec.dumps(error, execution_id=context.execution_id, key="error")
        except UnserializableValue:
            error_blob = None
    update = ExecutionUpdate(
        status=status,
        finished_at=time.time(),
        result=result,
        error=error_blob,
        error_text=error_text,
    )
    await context.store.update(context.lease, update)
    await context.store.release(context.lease)


def cancel_local(execution_id: str) -> asyncio.Task[Any] | None:
    """Cancel a run of this process at its next await; None if not here."""
    found = running.get(execution_id)
    if found is None:
        return None
    context, task = found
    context.cancel_requested = True
    task.cancel()
    return task


async def _watch(
    context: ExecutionContext, ttl: float, task: asyncio.Task[Any], lost: list[LeaseLost]
) -> None:
    """Renew the lease every ttl/3, and notice cancel requests made by other
    processes (`resumable cancel ID`) within CANCEL_POLL seconds."""
    poll = min(ttl / 3, CANCEL_POLL)
    next_renewal = time.monotonic() + ttl / 3
    while True:
        await asyncio.sleep(poll)
        try:
            if time.monotonic() >= next_renewal:
                context.lease = await context.store.renew(context.lease, ttl)
                next_renewal = time.monotonic() + ttl / 3
            cancelled = await context.store.cancel_requested(context.execution_id)
        except LeaseLost as exc:
            lost.append(exc)
            task.cancel()
            return
        except Exception as exc:  # a store hiccup: try again before the lease runs out
            log.warning("lease renewal failed", execution_id=context.execution_id, error=str(exc))
            continue
        if cancelled:
            context.cancel_requested = True
            task.cancel()
            return


def _decode_result(record: ExecutionRecord, codec: Codec) -> Any:
    if record.result is None:
        return None
    return codec.loads(record.result, execution_id=record.id, key="result")
