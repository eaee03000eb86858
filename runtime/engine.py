"""Start, resume and finish executions, top-level and child ones.

An execution runs in a task of its own with a copied context, so that the
execution's contextvars never leak into the caller. While it runs, a
background task renews its lease; if the lease is lost (another process took
over after it expired), the run is cancelled and `LeaseLost` is raised.

A @resumable function called inside an execution starts a *child*
execution (`start_child`): its id derives from the parent's id and the
call's position (records.child_id), the parent records it at that position
before the child exists, and a replay of the parent that reaches the call
again finds the child by that id: a completed child gives its stored
result, any other is resumed, by this process, as part of the parent. A
child runs under a lease of its own, in its parent's store.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from resumable._logs import get_logger
from resumable.errors import (
    CheckpointError,
    CodeChangedError,
    ExecutionCancelled,
    ExecutionLocked,
    ExecutionNotFound,
    LeaseLost,
    NonDeterminismError,
    StoreUnavailable,
)
from resumable.runtime import (
    events,
    faults,
    fingerprint,
    identity,
    ids,
    records,
    references,
    wire,
)
from resumable.runtime.context import ExecutionContext, enter_execution
from resumable.runtime.registry import REGISTRY
from resumable.runtime.settings import RENEWALS_PER_LEASE, OnCodeChange, Settings
from resumable.stores.base import EVERYTHING, ExecutionRecord, ExecutionUpdate, Lease, Store
from resumable.stores.codec import Codec, UnserializableValue

log = get_logger()

CANCEL_POLL = 0.5  # seconds between checks for a cancel requested elsewhere


@dataclass(frozen=True, slots=True)
class Target:
    """The user's coroutine function and what identifies it in the store."""

    function: Callable[..., Awaitable[Any]]
    reference: str
    name: str
    location: str
    fingerprint: str
    # Keep every checkpoint record after completion (for debugging) instead
    # of compacting them into a summary.
    keep_checkpoints: bool = False


@dataclass(eq=False, slots=True)
class Run:
    """An execution this process is running now."""

    context: ExecutionContext
    task: asyncio.Task[Any]  # the user's function
    settings: Settings
    parent_id: str | None


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


@dataclass(frozen=True, slots=True)
class Call:
    """A call of a @resumable function: what a new execution runs.
    `bound`: args[0] is the `self` of a method."""

    target: Target
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    bound: bool = False


@dataclass(frozen=True, slots=True)
class Started:
    """An execution as `start_or_resume` left it. `outcome` holds its
    result (or raises its exception) once it ends: already done for an
    execution that had completed, else the task running it in this process."""

    execution_id: str
    outcome: asyncio.Future[Any]


async def start_or_resume(
    settings: Settings,
    *,
    execution_id: str | None = None,
    call: Call | None = None,
    parent_id: str | None = None,
    stale: bool = False,
) -> Started:
    """The one way an execution comes to run in this process.

    With `call`: a new execution of it, under `execution_id` if given (an
    idempotency key: an execution already under that id gives its stored
    result, or is taken over and resumed). Without: the existing execution
    `execution_id`, resumed from its last checkpoint (`resume`, `recover`).
    `parent_id` and `stale` are for child executions (see `prepare_new`).
    Raises ExecutionNotFound, ExecutionLocked (a live process owns it) and
    CodeChangedError (per `settings.on_code_change`) before anything runs.
    """
    if call is not None:
        prepared = await prepare_new(
            call.target,
            call.args,
            call.kwargs,
            execution_id,
            settings,
            bound=call.bound,
            parent_id=parent_id,
            stale=stale,
        )
    elif execution_id is not None:
        prepared = await prepare_existing(execution_id, settings)
    else:
        raise TypeError("start_or_resume() needs a call, an execution_id, or both")
    loop = asyncio.get_running_loop()
    if isinstance(prepared, Finished):
        done: asyncio.Future[Any] = loop.create_future()
        done.set_result(prepared.result)
        return Started(prepared.execution_id, done)
    return Started(prepared.record.id, loop.create_task(run(prepared, settings)))


async def prepare_new(
    target: Target,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    execution_id: str | None,
    settings: Settings,
    *,
    bound: bool = False,
    parent_id: str | None = None,
    stale: bool = False,
) -> Prepared | Finished:
    """Create the execution, or, when the id exists (an idempotency key),
    return its stored result or take it over to resume it.

    `bound`: args[0] is the `self` of a method. `parent_id` makes it a child
    execution. `stale=True`: an execution found under this id that is a
    child of the same parent is left over from an earlier life of that
    parent (it restarted): it is deleted, with its own children, and created
    anew.
    """
    execution_id = execution_id or ids.new_id()
    blob = records.dump_arguments(
        settings.codec, target.name, target.function, (args, kwargs), execution_id, bound=bound
    )
    now = time.time()
    record = ExecutionRecord(
        id=execution_id,
        function=target.reference,
        name=target.name,
        args=blob,
        fingerprint=target.fingerprint,
        location=target.location,
        parent_id=parent_id,
        format=wire.FORMAT_VERSION,
        created_at=now,
        updated_at=now,
    )
    store, owner = settings.store, identity.this_owner()
    lease = await store.create(record, owner, settings.lease_ttl)
    if lease is None and stale:
        found = await store.get(execution_id)
        if found is not None and found.parent_id == parent_id:
            await _discard(store, found, settings.lease_ttl)
            lease = await store.create(record, owner, settings.lease_ttl)
    if lease is not None:
        REGISTRY.held.add(record.id)
        return Prepared(
            target, record, lease, {}, resumed=False, restart=False, args=args, kwargs=kwargs
        )
    return await prepare_existing(record.id, settings, target)


async def _discard(store: Store, record: ExecutionRecord, ttl: float) -> None:
    """Delete an execution and its descendants. Each one's lease is taken
    first, so nothing is deleted under a live owner (ExecutionLocked)."""
    lease = await acquire(store, record, ttl)
    try:
        for child in await store.list(parent_id=record.id, limit=EVERYTHING):
            await _discard(store, child, ttl)
    except BaseException:
        await store.release(lease)
        raise
    finally:
        REGISTRY.held.discard(record.id)
    await store.delete(record.id)  # the lease goes with it


async def prepare_existing(
    execution_id: str, settings: Settings, target: Target | None = None
) -> Prepared | Finished:
    store, codec = settings.store, settings.codec
    record = await store.get(execution_id)
    if record is None:
        raise ExecutionNotFound(execution_id, store.url)
    wire.check_version(execution_id, record.format)
    if record.format < wire.FORMAT_VERSION:
        # Read as it is, not migrated: the run goes on writing its format.
        log.info(
            "reading older record format",
            execution_id=execution_id,
            format=record.format,
            current=wire.FORMAT_VERSION,
            action="read as is; written in its own format",
        )
    if record.status == "completed":
        return Finished(execution_id, _decode_result(record, codec))
    target = target or resolve_target(record)
    lease = await acquire(store, record, settings.lease_ttl)
    restart = False
    if not fingerprint.same(record.fingerprint, target.fingerprint):
        if settings.on_code_change == "error":
            await store.release(lease)
            REGISTRY.held.discard(execution_id)
            raise CodeChangedError(
                execution_id,
                record.function,
                target.location,
                fingerprint.describe_change(record.fingerprint, target.fingerprint),
            )
        restart = settings.on_code_change == "restart"
    try:
        args, kwargs = codec.loads(record.args, execution_id=execution_id, key="arguments")
        checkpoints = {} if restart else await store.load(execution_id)
    except BaseException:
        # Refused arguments (another key, damage) or a failed read: nothing
        # ran, so nothing is recorded, but the lease goes, or a retry in this
        # process (with the right key) would wait for it to run out.
        await store.release(lease)
        REGISTRY.held.discard(execution_id)
        raise
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


def resolve_target(record: ExecutionRecord) -> Target:
    known = REGISTRY.defined.get(record.function)
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
        if not REGISTRY.owner_gone(record):
            raise
        # The owner is gone (a dead process of this host, or a dead run of
        # this one): take over at once rather than wait for the lease to
        # expire. steal_token makes this a compare-and-set, so a concurrent
        # taker cannot also win.
        lease = await store.acquire(record.id, owner, ttl, steal_token=record.lease_token)
    REGISTRY.held.add(record.id)
    return lease


@dataclass(frozen=True, slots=True)
class Child:
    """A child execution, as its parent's call found or started it."""

    execution_id: str
    store: Store
    outcome: asyncio.Future[Any]  # its result (or exception), once it ends


async def start_child(  # noqa: PLR0917
    parent: ExecutionContext,
    target: Target,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    execution_id: str | None,
    on_code_change: OnCodeChange | None,
    *,
    bound: bool,
) -> Child:
    """Start, find or resume the child execution that `parent` calls now.

    Its id is `execution_id` if given, else derived from the parent's id and
    this call's position. The child runs in the parent's store, with the
    parent's settings (`on_code_change` overrides the parent's if given).
    """
    key = parent.next_position()  # before any await: positions follow program order
    parent_run = REGISTRY.running.get(parent.execution_id)
    if parent_run is None:
        raise RuntimeError(
            f"{target.name} was called in execution {parent.execution_id!r} after that "
            "execution ended (from a task it did not await?): await every task that calls "
            "@resumable functions before the execution returns"
        )
    settings = parent_run.settings
    if on_code_change is not None:
        settings = dataclasses.replace(settings, on_code_change=on_code_change)
    recorded = records.read(parent, key, wire.CHILD_KIND, target.reference, target.location)
    if recorded is not None:
        child_id = str(recorded[wire.CHILD])
        if execution_id is not None and execution_id != child_id:
            raise NonDeterminismError(
                parent.execution_id,
                f"position {key}",
                f"child {target.reference} with id {child_id!r}",
                f"child {target.reference} with id {execution_id!r} ({target.location})",
            )
    else:
        child_id = execution_id or records.child_id(parent.execution_id, key)
        # Recorded before the child exists, so that a child under a derived
        # id without a record in its parent can only be left over from an
        # earlier life of the parent (it restarted): `stale` below.
        record = records.child_record(parent, key, target.reference, target.location, child_id)
        await parent.write_grouped({key: record})

    def begin() -> Awaitable[Started]:
        return start_or_resume(
            settings,
            execution_id=child_id,
            call=Call(target, args, kwargs, bound=bound),
            parent_id=parent.execution_id,
            stale=recorded is None and execution_id is None,
        )

    try:
        started = await begin()
    except ExecutionLocked:
        return Child(
            child_id, settings.store, asyncio.get_running_loop().create_task(_when_free(begin))
        )
    return Child(child_id, settings.store, started.outcome)


async def _when_free(begin: Callable[[], Awaitable[Started]]) -> Any:
    """The child is owned by another live run (one that `resume(child)` or
    `recover()` started, or a dead owner on another host whose lease has
    not expired yet): wait until it ends or its lease expires, then take its
    result or take it over."""
    while True:
        try:
            started = await begin()
        except ExecutionLocked as locked:
            await asyncio.sleep(min(max(locked.expires_in, 0.01), CANCEL_POLL))
            continue
        return await started.outcome


async def run(prepared: Prepared, settings: Settings) -> Any:
    """Run the execution to its end in a task of its own and record the outcome."""
    try:
        return await _run(prepared, settings)
    finally:
        # Only now: until its outcome is recorded and its lease released, the
        # lease is live and ours, and `acquire` must not take it for a dead
        # run of this process (the run would then lose its last update).
        REGISTRY.held.discard(prepared.record.id)


async def _run(prepared: Prepared, settings: Settings) -> Any:
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
        format=record.format,
        keep_records=prepared.target.keep_checkpoints,
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
    REGISTRY.running[record.id] = Run(context, task, settings, record.parent_id)
    try:
        result = await task
    except faults.SimulatedCrash as crash:
        crash.lease = context.lease  # a killed process records nothing
        raise
    except asyncio.CancelledError:
        if lost:
            raise lost[0] from None
        _cancel_children(record.id)
        await _cancelled(context, record, began, None)
        if context.cancel_requested:  # cancel(id): the caller was not cancelled
            raise ExecutionCancelled(record.id) from None
        raise
    except ExecutionCancelled as exc:
        # A child it awaited was cancelled (`resumable cancel CHILD`): so is
        # this execution, and resume() continues both.
        await _cancelled(context, record, began, exc)
        raise ExecutionCancelled(record.id) from exc
    except LeaseLost as exc:
        if exc.execution_id == record.id:
            raise
        # A child's: another process took the child over. Ours still holds.
        await _finish(context, "failed", None, exc)
        _failed(record, began, exc)
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
        REGISTRY.running.pop(record.id, None)
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
    compact = None if prepared.target.keep_checkpoints else record.format
    await _finish(context, "completed", blob, None, compact=compact)
    events.record(
        events.ExecutionCompleted, record.id, function=record.name, seconds=time.time() - began
    )
    return result


async def _cancelled(
    context: ExecutionContext, record: ExecutionRecord, began: float, why: BaseException | None
) -> None:
    await _finish(context, "cancelled", None, why)
    events.record(
        events.ExecutionStopped, record.id, function=record.name, seconds=time.time() - began
    )


def _cancel_children(parent_id: str) -> None:
    """Cancel the children of a cancelled execution that still run here:
    those it started (`.start()`) and did not await. Awaited ones were
    cancelled with the await."""
    for child in [run for run in REGISTRY.running.values() if run.parent_id == parent_id]:
        REGISTRY.cancel(child.context.execution_id)


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
    *,
    compact: int | None = None,
) -> None:
    """Record the outcome and release the lease. `compact` (the execution's
    record format): replace the checkpoint records with their summary
    (`wire.compact`) in the same transaction that stores the result."""
    error_blob = error_text = None
    if error is not None:
        error_text = "".join(traceback.format_exception(error))
        try:
            error_blob = context.codec.dumps(error, execution_id=context.execution_id, key="error")
        except UnserializableValue:
            error_blob = None
    summary = None
    if compact is not None:
        # Headers carry exact counts from format 2 on: no value blob is read.
        store, execution_id = context.store, context.execution_id
        counted = compact >= wire.COUNTED_FORMAT
        records = await (store.load_headers if counted else store.load)(execution_id)
        summary = wire.compact(execution_id, records, context.codec, format=compact)
    update = ExecutionUpdate(
        status=status,
        finished_at=time.time(),
        result=result,
        error=error_blob,
        # A completed resume leaves no error of an earlier attempt behind.
        error_text=error_text if status != "completed" else "",
        replace_checkpoints=summary,
    )
    await context.store.update(context.lease, update)
    await context.store.release(context.lease)


async def _watch(
    context: ExecutionContext, ttl: float, task: asyncio.Task[Any], lost: list[LeaseLost]
) -> None:
    """Renew the lease every ttl/RENEWALS_PER_LEASE, and notice cancel requests made by other
    processes (`resumable cancel ID`) within CANCEL_POLL seconds."""
    every = ttl / RENEWALS_PER_LEASE
    poll = min(every, CANCEL_POLL)
    next_renewal = time.monotonic() + every
    while True:
        await asyncio.sleep(poll)
        try:
            if time.monotonic() >= next_renewal:
                context.lease = await context.store.renew(context.lease, ttl)
                next_renewal = time.monotonic() + every
            cancelled = await context.store.cancel_requested(context.execution_id)
        except LeaseLost as exc:
            lost.append(exc)
            task.cancel()
            return
        except Exception as exc:  # a store hiccup: try again before the lease runs out
            log.warning(
                "lease renewal failed", execution_id=context.execution_id, error=type(exc).__name__
            )
            continue
        if cancelled:
            context.cancel_requested = True
            task.cancel()
            return


def _decode_result(record: ExecutionRecord, codec: Codec) -> Any:
    if record.result is None:
        return None
    return codec.loads(record.result, execution_id=record.id, key="result")
