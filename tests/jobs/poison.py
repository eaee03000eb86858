"""A loop whose carried value becomes unpicklable when POISON is set."""

from __future__ import annotations

import dataclasses

from resumable import aiter_checkpointed, resumable

POISON = {"at": 3}
RUNS: list[int] = []


class Opaque:
    """Data that cannot be pickled (not a resource: nothing rebuilds it)."""

    def __reduce__(self) -> str:
        raise TypeError("Opaque objects cannot be pickled")


def ran(i: int) -> None:
    RUNS.append(i)  # a side effect outside the loop's state


@resumable
async def job(n: int) -> tuple[int, object]:
    total = 0
    holder: object = None
    async for i in aiter_checkpointed(range(n)):
        ran(i)
        total += i
        holder = Opaque() if i == POISON["at"] else i
    return total, holder


@dataclasses.dataclass
class Tally:
    count: int = 0


@resumable
async def tally(n: int) -> int:
    kept = Tally()
    async for i in aiter_checkpointed(range(n)):
        kept.count += i  # an attribute store: `kept` is carried
    return kept.count
