"""Backfill a derived column over every row of a table, in pages.

A checkpointed loop over pages, with the page's rows written through a
batched amap; the API's idempotency key makes a re-sent write harmless.

    python examples/backfill.py backfill-2026-11-23
"""

from __future__ import annotations

import asyncio
import sys

from resumable import aiter_checkpointed, amap, current, resumable

WRITES: dict[str, int] = {}  # stands in for a remote API that deduplicates


async def fetch_page(page: int, size: int) -> list[int]:
    await asyncio.sleep(0.01)
    return list(range(page * size, page * size + size))


async def write_row(row: int) -> int:
    await asyncio.sleep(0.005)
    # Same key on every attempt of this item, also after a crash and resume.
    WRITES.setdefault(current().idempotency_key(), row * row)
    return row * row


@resumable
async def backfill(pages: int, size: int) -> dict[str, int]:
    rows = 0
    checksum = 0
    async for page in aiter_checkpointed(range(pages)):
        values = await amap(write_row, await fetch_page(page, size), concurrency=16)
        rows += len(values)
        checksum = (checksum + sum(values)) % 1_000_003
    return {"rows": rows, "checksum": checksum}


if __name__ == "__main__":
    execution_id = sys.argv[1] if len(sys.argv) > 1 else "backfill-example"
    print(asyncio.run(backfill.options(execution_id=execution_id)(50, 40)))
