"""The job of tests/data/format-1.db: an execution written by the first
release (format 1, commit 31d2c57) and stopped in the middle of its loop.
Kept unchanged: the fixture's checkpoints belong to this code."""

from __future__ import annotations

from resumable import aiter_checkpointed, amap, resumable, step

RAN: list[int] = []  # loop iterations run in this process


def ran(i: int) -> None:
    RAN.append(i)


@step
async def prepare(n: int) -> list[int]:
    return list(range(n))


async def double(x: int) -> int:
    return x * 2


@resumable
async def pipeline(n: int) -> dict[str, object]:
    items = await prepare(n)
    doubled = await amap(double, items, concurrency=4)
    total = 0
    squares = []
    by_key = {}
    async for i in aiter_checkpointed(items):
        ran(i)
        total += doubled[i]
        squares.append(i * i)
        by_key[str(i)] = i
    return {"total": total, "squares": squares, "by_key": by_key}


def expected(n: int) -> dict[str, object]:
    return {
        "total": sum(2 * i for i in range(n)),
        "squares": [i * i for i in range(n)],
        "by_key": {str(i): i for i in range(n)},
    }
