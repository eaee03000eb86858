"""Jobs whose records test/test_format.py inspects after completion."""

from __future__ import annotations

from resumable import aiter_checkpointed, amap, now, resumable, step


@resumable
async def counting(n: int) -> bool:
    total, out = 0, []
    async for i in aiter_checkpointed(range(n)):
        total += i
        out.append(i)
    return total == sum(out)


@resumable(keep_checkpoints=True)
async def kept(n: int) -> int:
    out = []
    async for i in aiter_checkpointed(range(n)):
        out.append(i)
    return len(out)


@resumable
async def appending(n: int) -> list[str]:
    results = []
    async for i in aiter_checkpointed(range(n)):
        results.append(f"{i:08d}".ljust(200, "x"))
    return results


STEPS_RUN: list[int] = []


@step
async def fetch(i: int) -> str:
    STEPS_RUN.append(i)
    return f"result {i}"


@resumable
async def step_per_iteration(n: int) -> list[str]:
    results = []
    async for i in aiter_checkpointed(range(n)):
        results.append(await fetch(i))
    return results


async def _item(i: int) -> int:
    text = await fetch(i)
    total = 0
    async for j in aiter_checkpointed(range(3)):
        total += j
    return len(text) + total


@resumable
async def nested(n: int) -> tuple[list[int], list[int]]:
    """Steps and loops inside amap items and inside the iterations of an
    outer loop with an inner loop."""
    sizes = await amap(_item, range(n), concurrency=3)
    inner_sums = []
    async for i in aiter_checkpointed(range(n)):
        acc = 0
        async for j in aiter_checkpointed(range(i + 1)):
            acc += len(await fetch(100 * i + j))
        inner_sums.append(acc)
    return sizes, inner_sums


@resumable(keep_checkpoints=True)
async def step_per_iteration_kept(n: int) -> list[str]:
    results = []
    async for i in aiter_checkpointed(range(n)):
        results.append(await fetch(i))
    return results


@resumable
async def stamped(n: int) -> list[bool]:
    out = []
    async for i in aiter_checkpointed(range(n)):
        out.append(now() > i)
    return out
