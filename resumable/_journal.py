"""Journaled non-determinism and the running execution's context.

`now()`, `uuid4()` and `random()` return the recorded value on replay, so
code that branches on them takes the same path after a resume. Their
records go out with the next checkpoint write, before anything that could
depend on them is recorded. `sleep()` records its wake-up time first, so a
resumed execution sleeps only what remains.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from resumable.errors import CorruptCheckpoint
from resumable.runtime import records, references, wire
from resumable.runtime.context import ExecutionContext, current_execution, position

__all__ = ["Current", "current", "now", "random", "sleep", "uuid4"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Current:
    """The running execution, as seen from inside it."""

    execution_id: str
    resumed: bool
    position: str | None

    def idempotency_key(self) -> str:
        """A key that is the same every time this step or item runs in this
        execution, including after a resume: pass it to APIs that deduplicate
        requests, so an in-flight call repeated after a crash is not applied
        twice."""
        return f"{self.execution_id}:{self.position or 'root'}"


def current() -> Current:
    """The running execution's context. Raises RuntimeError outside one."""
    context = current_execution()
    if context is None:
        raise RuntimeError(
            "resumable.current() was called outside an execution: call it from a "
            "@resumable function, or a step, loop or item inside one"
        )
    return Current(context.execution_id, context.resumed, position.get())


def _journaled(
    name: str, produce: Callable[[], T], encode: Callable[[T], Any], decode: Callable[[Any], T]
) -> T:
    context = current_execution()
    if context is None:
        return produce()
    key = context.next_position(f"resumable.{name}()")
    where = references.caller_location()
    header = records.read(context, key, wire.JOURNALED, name, where)
    if header is not None:
        try:
            return decode(header[wire.VALUE])
        except (TypeError, ValueError, KeyError) as exc:  # damaged: say so, not a bare error
            raise CorruptCheckpoint(
                context.execution_id, key, f"its recorded {name}() value cannot be read ({exc})"
            ) from None
    value = produce()
    context.pending[key] = records.seal(
        context, wire.value_header(wire.JOURNALED, name, where, encode(value)), key
    )
    return value


def _same(value: T) -> T:
    return value


def now() -> float:
    """`time.time()`, recorded: a resumed execution sees the same value."""
    return float(_journaled("now", time.time, _same, float))


def uuid4() -> _uuid.UUID:
    """`uuid.uuid4()`, recorded: a resumed execution sees the same value."""
    return _journaled("uuid4", _uuid.uuid4, str, _uuid.UUID)


def random() -> float:
    """`random.random()`, recorded: a resumed execution sees the same value."""
    return float(_journaled("random", _random.random, _same, float))


async def sleep(seconds: float) -> None:
    """A durable sleep: the wake-up time is recorded before sleeping, so after
    a resume only the remaining time is slept."""
    if seconds < 0:
        raise ValueError(f"sleep({seconds!r}): seconds must be >= 0")
    context = current_execution()
    if context is None:
        await asyncio.sleep(seconds)
        return
    wake = await _wake_time(context, seconds, references.caller_location())
    remaining = wake - time.time()
    if remaining > 0:
        await asyncio.sleep(remaining)


async def _wake_time(context: ExecutionContext, seconds: float, where: str) -> float:
    key = context.next_position("resumable.sleep()")
    header = records.read(context, key, wire.SLEEP, "sleep", where)
    if header is not None:
        return float(header[wire.VALUE])
    wake = time.time() + seconds
    await context.write(
        {key: records.seal(context, wire.value_header(wire.SLEEP, "sleep", where, wake), key)}
    )
    return wake
