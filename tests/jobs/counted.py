"""Fan-outs whose header item counts tests/test_progress.py checks against
their item records (kept at completion: keep_checkpoints=True)."""

from __future__ import annotations

import asyncio

from resumable import amap, resumable


async def _maybe_fail(x: int) -> int:
    await asyncio.sleep(0.001 * (x % 5))  # items finish out of order, several per write
    if x % 4 == 3:
        raise ValueError(x)
    return x


@resumable(keep_checkpoints=True)
async def mixed(n: int) -> int:
    """n items, every 4th fails and is recorded as a failure."""
    results = await amap(_maybe_fail, range(n), concurrency=8, return_exceptions=True)
    return sum(1 for r in results if isinstance(r, BaseException))
