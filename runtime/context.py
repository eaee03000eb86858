"""The running execution, and where in it the current code is.

Every helper call (loop, step, map, gather) gets a *position*: the scope it
runs in plus its call order within that scope. A scope is the path of
enclosing checkpointed iterations (and, for `amap`, items), so positions are
keyed by data ("iteration 17 of the loop at #3"), never by timing. On replay
the same code reaches the same positions in the same order, which is how a
restored loop finds its checkpoint, and how a divergence is noticed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from resumable.runtime import bytecode, faults

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
        instruction = code_facts.instructions[code_facts.index_at_or_before(self.frame.f_lasti)]
        return instruction.offset in self.body

    def scope(self) -> str:
        return f"{self.key}[{self.index}]/"


@dataclass(frozen=True, slots=True)
class Scope:
    """The scope of the current task: enclosing loops, and the scope that
    encloses them (an `amap` item's, or the execution's root "")."""

    base: str = ""
    loops: tuple[OpenLoop, ...] = ()


@dataclass(eq=False, slots=True)
class ExecutionContext:
    """State of one execution while this process runs it."""

    execution_id: str
    store: Store
    lease: Lease
    codec: Codec
    records: dict[str, bytes]  # checkpoint records loaded when the run began
    resumed: bool
    counters: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    async def write(self, puts: Mapping[str, bytes], deletes: Collection[str] = ()) -> None:
        """Write one atomic checkpoint, fenced by this run's lease."""
        faults.before_write()
        await self.store.write(self.lease, puts, deletes)

    def next_position(self) -> str:
        """The key of the next helper call in the current scope."""
        scope = current_scope()
        path = scope.base + "".join(loop.scope() for loop in scope.loops)
        seq = self.counters.get(path, 0)
        self.counters[path] = seq + 1
        return f"{path}#{seq}"


_execution: ContextVar[ExecutionContext | None] = ContextVar("resumable_execution", default=None)
_scope: ContextVar[Scope] = ContextVar("resumable_scope", default=Scope())  # noqa: B039


def current_execution() -> ExecutionContext | None:
    return _execution.get()


def enter_execution(context: ExecutionContext) -> None:
    """Make `context` current for this task (tasks copy contextvars, so the
    items `amap` spawns inherit it)."""
    _execution.set(context)
    _scope.set(Scope())


def current_scope() -> Scope:
    """The scope of the current task, with loops that were left dropped."""
    scope = _scope.get()
    loops = scope.loops
    while loops and not loops[-1].active():
        loops = loops[:-1]
    if loops is not scope.loops:
        scope = Scope(scope.base, loops)
        _scope.set(scope)
    return scope


def push_loop(loop: OpenLoop) -> None:
    scope = current_scope()
    _scope.set(Scope(scope.base, (*scope.loops, loop)))


def pop_loop(loop: OpenLoop) -> None:
    scope = _scope.get()
    if loop in scope.loops:
        _scope.set(Scope(scope.base, scope.loops[: scope.loops.index(loop)]))
