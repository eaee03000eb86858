"""A loop whose carried value becomes unpicklable when POISON is set."""

from __future__ import annotations

import dataclasses
import threading

from resumable import aiter_checkpointed, resumable

POISON = {"at": 3}
RUNS: list[int] = []


@resumable
async def job(n: int) -> tuple[int, object]:
    total = 0
    holder: object = None
    async for i in aiter_checkpointed(range(n)):
        RUNS.append(i)
        total += i
        holder = threading.Lock() if i == POISON["at"] else i
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
