"""The running execution, and where in it the current code is.

Every helper call (loop, step, map, gather) gets a *position*: the scope it
runs in plus its call order within that scope. A scope is the path of
enclosing checkpointed iterations (and, for `amap`, items), so positions are
keyed by data ("iteration 17 of the loop at #3"), never by timing. On replay
the same code reaches the same positions in the same order, which is how a
restored loop finds its checkpoint, and how a divergence is noticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from resumable.errors import LoopShapeError
from resumable.runtime import bytecode, faults, references, wire

if TYPE_CHECKING:
    from resumable.stores.base import Lease, Store
    from resumable.stores.codec import Codec


@dataclass(eq=False, slots=True)
class OpenLoop:
    """A checkpointed loop whose body may still be running.

    A loop left by `break`, `return` or an exception never tells us so; it is
    noticed lazily: its frame's current instruction is no longer in its body.
    """

    key: str
    frame: FrameType
    body: frozenset[int]
    index: int = 0

    def active(self) -> bool:
        code_facts = bytecode.facts(self.frame.f_code)
        return code_facts.offsets[code_facts.index_at_or_before(self.frame.f_lasti)] in self.body

    def scope(self) -> str:
        return f"{self.key}[{self.index}]/"


@dataclass(frozen=True, slots=True)
class Scope:
    """The scope of the current task: enclosing loops, and the scope that
    encloses them (an `amap` item's, or the execution's root ""). `owner` is
    the task the scope belongs to: the execution's, or an item's."""

    base: str = ""
    loops: tuple[OpenLoop, ...] = ()
    owner: asyncio.Task[Any] | None = None


@dataclass(eq=False, slots=True)
class ExecutionContext:
    """State of one execution while this process runs it."""

    execution_id: str
    store: Store
    lease: Lease
    codec: Codec
    records: dict[str, bytes]  # checkpoint records loaded when the run began
    resumed: bool
    # The record format this execution was created with: what it goes on
    # writing, so one execution never mixes formats.
    format: int = wire.FORMAT_VERSION
    # @resumable(keep_checkpoints=True): nothing is deleted, for debugging.
    keep_records: bool = False
    counters: dict[str, int] = field(default_factory=dict)
    # Records of synchronous journaled values (now(), uuid4(), ...): they go
    # out with the next write, before anything that could depend on them.
    pending: dict[str, bytes] = field(default_factory=dict)
    memo: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    cancel_requested: bool = False
    _group: _GroupCommit | None = None
    _items: dict[str, dict[int, bytes]] | None = None
    # The records under each loop-iteration or fan-out-item scope ("#0[3]/"
    # -> its keys, nested scopes' included), loaded or written: when a scope
    # finishes, its records go in the write that records it finished (see
    # `finish_scope`).
    _scoped: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in self.records:
            if wire.SCOPE_END in key:
                self._note_scoped(key)

    def write(self, puts: Mapping[str, bytes], deletes: Collection[str] = ()) -> Awaitable[None]:
        """Write one atomic checkpoint, fenced by this run's lease. A plain
        function returning the store's awaitable: one coroutine frame less
        on the per-iteration path."""
        faults.before_write()
        if self.pending:
            puts = {**self.pending, **puts}
            self.pending = {}
        for key in puts:
            if wire.SCOPE_END in key:
                self._note_scoped(key)
        return self.store.write(self.lease, puts, deletes)

    def finish_scope(self, prefix: str) -> list[str]:
        """The records under the scope `prefix` (an iteration or item that
        just finished), to delete in the write that records it finished: a
        resume skips a finished iteration or item without running its body,
        so nothing reads them again (a step in every iteration would
        otherwise leave one record per iteration, read at every resume)."""
        self.counters.pop(prefix, None)
        if self.pending and not self.keep_records:
            # A journaled value of the scope not written yet: it never will be.
            for key in [key for key in self.pending if key.startswith(prefix)]:
                del self.pending[key]
        keys = self._scoped.pop(prefix, None)
        if not keys or self.keep_records:
            return []
        for key in keys:
            self.records.pop(key, None)
            for scope in wire.scope_prefixes(key):  # the nested scopes it was noted in
                inner = self._scoped.get(scope)
                if inner is not None:
                    inner.discard(key)
                    if not inner:
                        del self._scoped[scope]
        return list(keys)

    def _note_scoped(self, key: str) -> None:
        for scope in wire.scope_prefixes(key):
            self._scoped.setdefault(scope, set()).add(key)

    async def write_grouped(self, puts: Mapping[str, bytes], deletes: Collection[str] = ()) -> None:
        """Write `puts` (and delete `deletes`) together with every other
        grouped write of the same event-loop turn, in one transaction (group
        commit). Returns once the transaction holding them is acknowledged.
        The writes of one turn touch distinct keys: each item writes its own."""
        if self._group is None:
            self._group = _GroupCommit(self)
        await self._group.add(puts, deletes)

    def item_records(self, key: str) -> dict[int, bytes]:
        """Recorded item outcomes of the fan-out at `key`, by index."""
        if self._items is None:
            self._items = {}
            for name, data in self.records.items():
                parsed = wire.parse_key(name)
                if parsed.kind == "item" and parsed.index is not None:
                    self._items.setdefault(parsed.position, {})[parsed.index] = data
        return self._items.get(key, {})

    def next_position(self, what: str = "a step") -> str:
        """The key of the next helper call (`what`, for messages) in the
        current scope. Refuses a call from a task the execution did not
        create through `amap`/`agather`: tasks of a plain `asyncio.gather` or
        `create_task` run concurrently in one scope, so their calls would be
        numbered by timing, and a resume could hand one's checkpoint to the
        other."""
        scope = _scope.get()
        if scope.owner is not None:
            task = asyncio.current_task()
            if task is not scope.owner:
                raise LoopShapeError(
                    references.caller_location(),
                    f"{what} runs in task {task.get_name() if task else '?'}, which this "
                    "execution did not start through agather() or amap(): tasks made by "
                    "asyncio.gather(), create_task(), a TaskGroup, shield() or (on 3.11) "
                    "wait_for() run side by side in one scope, so their checkpoints would be "
                    "keyed by timing and a resume could give one task's progress to another",
                    "run the concurrent branches with `await agather(helper_a(), helper_b())` "
                    "or `await amap(fn, items)`, which key each branch by position; for a "
                    "timeout use `async with asyncio.timeout(...)`",
                )
        path = scope_path()
        seq = self.counters.get(path, 0)
        self.counters[path] = seq + 1
        return wire.position(path, seq)


class _GroupCommit:
    """Coalesces the writes that arrive while one is being prepared: the
    first write of a turn schedules a flush; every write until the flush
    joins it and waits for the same acknowledgement."""

    def __init__(self, context: ExecutionContext) -> None:
        self._context = context
        self._puts: dict[str, bytes] = {}
        self._deletes: list[str] = []
        self._waiters: list[asyncio.Future[None]] = []

    async def add(self, puts: Mapping[str, bytes], deletes: Collection[str] = ()) -> None:
        loop = asyncio.get_running_loop()
        if not self._waiters:
            loop.call_soon(self._start_flush)
        self._puts.update(puts)
        self._deletes.extend(deletes)
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def _start_flush(self) -> None:
        puts, deletes, waiters = self._puts, self._deletes, self._waiters
        self._puts, self._deletes, self._waiters = {}, [], []
        task = asyncio.get_running_loop().create_task(self._flush(puts, deletes, waiters))
        _flushes.add(task)
        task.add_done_callback(_flushes.discard)

    async def _flush(
        self, puts: dict[str, bytes], deletes: list[str], waiters: list[asyncio.Future[None]]
    ) -> None:
        try:
            await self._context.write(puts, deletes)
        except BaseException as exc:  # every waiter gets the failure, whatever it is
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        else:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


_flushes: set[asyncio.Task[None]] = set()  # strong references while flushes run

_execution: ContextVar[ExecutionContext | None] = ContextVar("resumable_execution", default=None)
_scope: ContextVar[Scope] = ContextVar("resumable_scope", default=Scope())  # noqa: B039


# The step or item running now: what current().idempotency_key() names.
position: ContextVar[str | None] = ContextVar("resumable_position", default=None)


def current_execution() -> ExecutionContext | None:
    return _execution.get()


def enter_execution(context: ExecutionContext) -> None:
    """Make `context` current for this task (tasks copy contextvars, so the
    items `amap` spawns inherit it)."""
    _execution.set(context)
    _scope.set(Scope(owner=asyncio.current_task()))


def current_scope() -> Scope:
    """The scope of the current task, with loops that were left dropped."""
    scope = _scope.get()
    loops = scope.loops
    while loops and not loops[-1].active():
        loops = loops[:-1]
    if loops is not scope.loops:
        scope = Scope(scope.base, loops, scope.owner)
        _scope.set(scope)
    return scope


def scope_path() -> str:
    """The current scope as a key prefix ("" at the top of an execution)."""
    scope = current_scope()
    return scope.base + "".join(loop.scope() for loop in scope.loops)


def enter_item_scope(path: str) -> None:
    """Make this task (an `amap`/`agather` item) a scope of its own."""
    _scope.set(Scope(path, (), asyncio.current_task()))


def push_loop(loop: OpenLoop) -> None:
    scope = current_scope()
    _scope.set(Scope(scope.base, (*scope.loops, loop), scope.owner))


def pop_loop(loop: OpenLoop) -> None:
    scope = _scope.get()
    if loop in scope.loops:
        _scope.set(Scope(scope.base, scope.loops[: scope.loops.index(loop)], scope.owner))
