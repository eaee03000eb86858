"""The job of tests/test_migrate.py: what an older, unsigned release wrote,
in every kind of record: a step (a pickled result) and a failed step, a
memoized step, a journaled value, an amap's items, and a loop of more than
FOLD iterations whose list, dict and set are written as deltas and chunks,
carrying a pickled value (a Fraction) besides."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

from jobs import format2
from resumable import aiter_checkpointed, amap, random, resumable, step


@step
async def prepare(n: int) -> list[int]:
    return list(range(n))


@step
async def half() -> Fraction:
    return Fraction(1, 2)


@step
async def refuse() -> None:
    raise ValueError("no")


@step(memoize=True)
async def label(k: int) -> str:
    return f"label {k}"


async def double(x: int) -> int:
    return x * 2


@resumable
async def building(n: int, log_path: str, delay: float) -> dict[str, object]:
    log = Path(log_path)
    items = await prepare(n)
    share = await half()
    try:
        await refuse()
    except ValueError as exc:
        refused = str(exc)
    random()  # journaled: its record is read back on resume
    doubled = await amap(double, items[:10], concurrency=4)
    total = sum(doubled)
    weight = Fraction(0)
    squares = []
    by_key = {}
    seen = set()
    labels = set()
    async for i in aiter_checkpointed(items):
        with log.open("a", encoding="utf-8") as out:
            out.write(f"i:{i}\n")
        total += i
        weight += share
        squares.append(i * i)
        by_key[str(i)] = i
        if i % 5 == 0:
            del by_key[str(i // 2)]
        seen.add(i % 1800)
        if i % 9 == 0:
            seen.discard(i // 3)
        labels.add(await label(i % 3))
        if delay:
            await asyncio.sleep(delay)
    return {
        "total": total,
        "weight": str(weight),
        "refused": refused,
        "squares": squares,
        "by_key": by_key,
        "seen": sorted(seen),
        "labels": sorted(labels),
    }


def expected(n: int) -> dict[str, object]:
    """The loop's list, dict and set change as format2's job's do."""
    return {
        **format2.expected(n),
        "weight": str(Fraction(n, 2)),
        "refused": "no",
        "labels": sorted({f"label {k}" for k in range(min(n, 3))}),
    }
