"""Bounded concurrent fan-out with per-item checkpoints: the engine of
`amap` and `agather`.

Items are pulled from the source only as capacity frees up (backpressure);
ordered delivery buffers at most `window` items past the oldest unfinished
one, so memory stays bounded for any input length. Each item runs in a task
of its own whose scope is keyed by its index, so whatever it does inside
(steps, loops) is keyed by data, never by timing. A finished item's outcome
is written with group commit before it counts as finished; on replay,
recorded items are delivered without running.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from resumable.runtime import events, records, wire
from resumable.runtime.context import (
    ExecutionContext,
    current_execution,
    enter_item_scope,
    position,
    scope_path,
)
from resumable.runtime.retry import Retry, call_with_policy

Start = Callable[[Any], Awaitable[Any]]  # runs one item


@dataclass(slots=True)
class Outcome:
    index: int
    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    kind: str  # "map" or "gather"
    site: str
    location: str
    concurrency: int
    ordered: bool
    policy: Retry | None
    timeout: float | None
    return_exceptions: bool
    total: int | None
    discard: Callable[[Any], None] | None = None  # for items skipped unrun (coroutines)


class Fanout:
    """One `amap`/`agather` call. Its position is taken when it is created."""

    def __init__(self, plan: Plan, start: Start, source: AsyncIterator[Any]) -> None:
        self.plan = plan
        self._start = start
        self._source = source
        self._context = current_execution()
        self._key = ""
        self._recorded: dict[int, bytes] = {}
        # Items recorded, by this process and by earlier attempts: the counts
        # the header carries (see _record).
        self._done = self._failed = self._in_flight = 0
        if self._context is not None:
            self._key = self._context.next_position(
                "a" + "n" * (plan.kind == "map") + f" {plan.site}"
            )
            records.read(self._context, self._key, plan.kind, plan.site, plan.location)
            self._recorded = self._context.item_records(self._key)
            self._path = scope_path()
            self._failed = sum(data[:1] == wire.OUTCOME_ERROR for data in self._recorded.values())
            self._done = len(self._recorded) - self._failed
            if self._recorded:
                events.record(
                    events.FanoutResumed,
                    self._context.execution_id,
                    position=self._key,
                    kind=plan.kind,
                    site=plan.site,
                    recorded=len(self._recorded),
                )

    async def stream(self) -> AsyncIterator[Outcome]:
        """Outcomes in input order (or as completed when not ordered)."""
        plan = self.plan
        window = plan.concurrency * 4 if plan.ordered else plan.concurrency
        running: dict[asyncio.Task[Outcome], int] = {}
        ready: dict[int, Outcome] = {}
        pulled = delivered = 0
        exhausted = False
        try:
            while True:
                while (
                    not exhausted
                    and len(running) < plan.concurrency
                    and pulled - delivered < window
                ):
                    try:
                        item = await anext(self._source)
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    index, pulled = pulled, pulled + 1
                    if index in self._recorded:
                        ready[index] = self._replayed(index, item)
                        continue
                    task = asyncio.get_running_loop().create_task(
                        self._run(index, item), context=contextvars.copy_context()
                    )
                    running[task] = index
                while ready:
                    if plan.ordered:
                        if delivered not in ready:
                            break
                        outcome = ready.pop(delivered)
                    else:
                        outcome = ready.pop(next(iter(ready)))
                    delivered += 1
                    yield outcome
                if not running:
                    if exhausted and not ready:
                        return
                    continue
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    del running[task]
                    outcome = task.result()
                    if outcome.error is not None and not plan.return_exceptions:
                        raise outcome.error
                    ready[outcome.index] = outcome
        finally:
            await self._stop(running)

    async def _stop(self, running: dict[asyncio.Task[Outcome], int]) -> None:
        """Cancel what still runs and close what was never started."""
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        if self.plan.discard is not None:
            async for item in self._source:
                self.plan.discard(item)

    def _replayed(self, index: int, item: Any) -> Outcome:
        if self.plan.discard is not None:
            self.plan.discard(item)
        assert self._context is not None
        key = wire.item_key(self._key, index)
        value, error = records.load_outcome(self._context, self._recorded[index], key)
        return Outcome(index, value, error)

    async def _run(self, index: int, item: Any) -> Outcome:
        context = self._context
        if context is not None:
            enter_item_scope(wire.item_scope(self._path, self._key, index))
            position.set(wire.item_position(self._key, index))
        self._in_flight += 1
        if context is not None:
            events.record(events.ItemStarted, context.execution_id, position=self._key, index=index)
        try:
            value = await call_with_policy(
                lambda: self._start(item),
                self.plan.policy,
                self.plan.timeout,
                lambda attempt, exc: self._retried(index, attempt, exc),
            )
            outcome = Outcome(index, value)
        except Exception as exc:
            outcome = Outcome(index, error=exc)
        finally:
            self._in_flight -= 1
        if context is not None and (outcome.error is None or self.plan.return_exceptions):
            await self._record(context, outcome)
        return outcome

    def _retried(self, index: int, attempt: int, error: BaseException) -> None:
        context = self._context
        events.record(
            events.ItemRetried,
            context.execution_id if context else "-",
            position=self._key,
            index=index,
            attempt=attempt,
            error=type(error).__name__,
        )

    async def _record(self, context: ExecutionContext, outcome: Outcome) -> None:
        where = f"{self.plan.kind} {self.plan.site} ({self.plan.location})"
        item_key = wire.item_key(self._key, outcome.index)
        data = records.dump_outcome(
            context, outcome.value, outcome.error, where, f"item {outcome.index}", item_key
        )
        # The counts grow and the header is handed to group commit with no
        # await in between: when several items share a transaction, the
        # last header put (the one kept) holds the highest counts, equal to
        # the item records that the transaction leaves.
        if outcome.error is None:
            self._done += 1
        else:
            self._failed += 1
        header = wire.FanoutHeader(
            kind=self.plan.kind,
            site=self.plan.site,
            location=self.plan.location,
            total=self.plan.total,
            in_flight=self._in_flight,
            concurrency=self.plan.concurrency,
            items_done=self._done,
            items_failed=self._failed,
        )
        # The item's own records (its steps, loops, children) go with its
        # outcome: a resume takes the outcome and never runs the item again.
        scope = wire.item_scope(self._path, self._key, outcome.index)
        await context.write_grouped(
            {item_key: data, self._key: records.seal(context, header.wire(), self._key)},
            context.finish_scope(scope),
        )
