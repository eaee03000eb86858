"""Testing helpers for users of `resumable` (and for our own tests).

* `crash_after(n)`: the checkpoint write after the first `n` raises
  `SimulatedCrash`, which skips all clean-up, as SIGKILL would.
* `run_to_completion_with_crashes(fn, *args, crash_points=[...])`: start an
  execution, crash it at each point in turn, resume it until it ends, and
  count how often each step, iteration and item started.
* The `resumable_store` pytest fixture: a fresh SQLite store in `tmp_path`,
  the process default for the test, closed after (its per-user signing key
  is made in `tmp_path` too, unless RESUMABLE_KEY_DIR is set). Installing
  `resumable` registers it (a `pytest11` entry point); nothing to import.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from resumable import _config
from resumable._decorator import ResumableFunction
from resumable._executions import resume
from resumable.runtime import audit, events, ids
from resumable.runtime.faults import CrashPlan, SimulatedCrash, crash_plan
from resumable.stores.base import Store

__all__ = ["CrashRun", "SimulatedCrash", "crash_after", "run_to_completion_with_crashes"]

R = TypeVar("R")


@contextmanager
def crash_after(n: int) -> Iterator[CrashPlan]:
    """Let `n` checkpoint writes happen, then make the next one raise
    `SimulatedCrash` (a BaseException that skips all clean-up, as SIGKILL
    would). Executions started inside the block inherit the plan."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"crash_after({n!r}): n must be an int >= 0")
    plan = CrashPlan(after=n)
    token = crash_plan.set(plan)
    try:
        yield plan
    finally:
        crash_plan.reset(token)


@dataclass(frozen=True, slots=True)
class CrashRun(Generic[R]):
    """What `run_to_completion_with_crashes` saw.

    `crashes` holds the crash points that really fired, in order (a point the
    execution finished before does not crash it). The counters say how often
    work *started* over all attempts: a step, iteration or item whose
    checkpoint was written starts once; one in flight at a crash starts again.
    """

    execution_id: str
    result: R
    crashes: tuple[int, ...]
    events: tuple[events.Event, ...]
    steps: Counter[str]  # step name -> calls
    iterations: Counter[tuple[str, int]]  # (loop position, index) -> starts
    items: Counter[tuple[str, int]]  # (amap/agather position, index) -> starts

    @property
    def attempts(self) -> int:
        return len(self.crashes) + 1


async def run_to_completion_with_crashes(
    fn: ResumableFunction[..., R],
    *args: Any,
    crash_points: Sequence[int] = (),
    store: Store | str | None = None,
    **kwargs: Any,
) -> CrashRun[R]:
    """Run `fn(*args, **kwargs)` as a new execution that crashes after
    `crash_points[0]` checkpoint writes, resume it so that it crashes again
    after `crash_points[1]` writes of that attempt, and so on; then resume it
    until it ends. Returns its result with counts of what started.

    Each crash leaves the store as a killed process would; the dead owner's
    lease is released before the next resume (a real one would expire, or be
    recognised as dead). `store` defaults to the function's, then the
    process default. The user's exceptions propagate.
    """
    if not isinstance(fn, ResumableFunction):
        raise TypeError(f"run_to_completion_with_crashes({fn!r}): expected a @resumable function")
    points = tuple(crash_points)
    for point in points:
        if not isinstance(point, int) or isinstance(point, bool) or point < 0:
            raise ValueError(
                f"run_to_completion_with_crashes(crash_points={list(points)!r}): "
                "each crash point is a number of checkpoint writes, an int >= 0"
            )
    chosen = _config.resolve_store(store if store is not None else fn._store)
    execution_id = ids.new_id()
    seen: list[events.Event] = []

    def collect(event: events.Event) -> None:
        if event.execution_id == execution_id:
            seen.append(event)

    async def attempt(first: bool) -> R:
        if first:
            return await fn.options(execution_id=execution_id, store=chosen)(*args, **kwargs)
        return await resume(execution_id, store=chosen)  # type: ignore[no-any-return]

    unsubscribe = events.subscribe(collect)
    fired: list[int] = []
    # The carry audit is on while it runs (unless configure(audit_carry=False)
    # said otherwise): a local the loop should have carried fails the test at
    # the checkpoint that missed it, crash or not.
    audited = audit.configured()
    audit.configure(audited is not False)
    try:
        for point in points:
            with crash_after(point):
                try:
                    result = await attempt(first=not fired)
                except SimulatedCrash as crash:
                    fired.append(point)
                    if crash.lease is not None:
                        await chosen.release(crash.lease)
                    continue
            return _report(execution_id, result, fired, seen)
        result = await attempt(first=not fired)
        return _report(execution_id, result, fired, seen)
    finally:
        unsubscribe()
        audit.configure(audited)


def _report(
    execution_id: str, result: R, fired: list[int], seen: list[events.Event]
) -> CrashRun[R]:
    steps: Counter[str] = Counter()
    iterations: Counter[tuple[str, int]] = Counter()
    items: Counter[tuple[str, int]] = Counter()
    for event in seen:
        if isinstance(event, events.StepStarted):
            steps[event.step] += 1
        elif isinstance(event, events.IterationStarted):
            iterations[event.position, event.index] += 1
        elif isinstance(event, events.ItemStarted):
            items[event.position, event.index] += 1
    return CrashRun(
        execution_id=execution_id,
        result=result,
        crashes=tuple(fired),
        events=tuple(seen),
        steps=steps,
        iterations=iterations,
        items=items,
    )
