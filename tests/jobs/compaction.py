"""Jobs whose records test/test_format.py inspects after completion."""

from __future__ import annotations

from resumable import aiter_checkpointed, resumable


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
