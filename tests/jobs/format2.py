"""The job of tests/data/format-2.db: an execution written in record format
2 (commit 36ef459) and stopped in the middle of its loop, after its list,
dict and set had been folded into chunks twice. Kept unchanged: the
fixture's checkpoints belong to this code."""

from __future__ import annotations

from resumable import aiter_checkpointed, amap, resumable, step

RAN: list[int] = []  # loop iterations run in this process
N = 2600


def ran(i: int) -> None:
    RAN.append(i)


@step
async def prepare(n: int) -> list[int]:
    return list(range(n))


async def double(x: int) -> int:
    return x * 2


@resumable
async def building(n: int) -> dict[str, object]:
    items = await prepare(n)
    doubled = await amap(double, items[:10], concurrency=4)
    total = sum(doubled)
    squares = []
    by_key = {}
    seen = set()
    async for i in aiter_checkpointed(items):
        ran(i)
        total += i
        squares.append(i * i)
        by_key[str(i)] = i
        if i % 5 == 0:
            del by_key[str(i // 2)]
        seen.add(i % 1800)
        if i % 9 == 0:
            seen.discard(i // 3)
    return {"total": total, "squares": squares, "by_key": by_key, "seen": sorted(seen)}


def expected(n: int) -> dict[str, object]:
    total = sum(2 * i for i in range(10))
    by_key: dict[str, int] = {}
    seen: set[int] = set()
    for i in range(n):
        total += i
        by_key[str(i)] = i
        if i % 5 == 0:
            del by_key[str(i // 2)]
        seen.add(i % 1800)
        if i % 9 == 0:
            seen.discard(i // 3)
    squares = [i * i for i in range(n)]
    return {"total": total, "squares": squares, "by_key": by_key, "seen": sorted(seen)}
