"""`aiter_checkpointed`: the public face of the checkpointed loop."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterable, Iterable
from typing import TypeVar

from resumable.runtime.loop import AUTO, CheckpointedLoop, _Auto

T = TypeVar("T")


def aiter_checkpointed(
    iterable: Iterable[T] | AsyncIterable[T],
    *,
    carry: _Auto | tuple[str, ...] = AUTO,
    ignore: tuple[str, ...] = (),
    every: int = 1,
    name: str | None = None,
) -> CheckpointedLoop[T]:
    """Iterate like `async for`, checkpointing after every finished iteration.

    Use it directly as the iterable of an `async for` inside a `@resumable`
    function (or a coroutine it calls). After each finished iteration (or
    every `every`), the index and the loop's carried locals are written to
    the store; on resume they are written back into the frame and iteration
    continues at the first unfinished index. `carry=AUTO` finds the carried
    locals from the bytecode and refuses, before the first iteration, a local
    it can neither carry nor prove safe to leave out; `carry=("a", "b")`
    names them; `carry=()` carries nothing; `ignore=("bar",)` declares
    locals deliberately not carried. Outside an execution it is a plain loop.
    """
    return CheckpointedLoop(
        iterable, carry=carry, ignore=ignore, every=every, name=name, frame=sys._getframe(1)
    )
