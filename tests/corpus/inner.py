"""Containers changed through an inner container: `batches[-1].append(x)`,
`shards[i % 3].append(i)`, `tree[a][b] = c`, and an alias of an entry.

The outer name is only read (BINARY_SUBSCR) in the body; the change happens
on the object read out of it. Checkpointing the outer list as append-only
deltas would miss every change made to an inner list after it was written.
"""

from __future__ import annotations

from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed, resumable


@exact(redis=True)
@resumable
async def batch_by_three(log: str) -> list[list[str]]:
    """A new batch every 3 items; items go into `batches[-1]`."""
    batches: list[list[str]] = [[]]
    async for i in aiter_checkpointed(range(11)):
        record(log, f"batch-item:{i}")
        if len(batches[-1]) == 3:
            batches.append([])
        batches[-1].append(f"row-{i}")
    return batches


@exact()
@resumable
async def round_robin_shards(log: str) -> list[list[int]]:
    """`shards[i % 3].append(i)`: three lists made before the loop."""
    shards: list[list[int]] = [[], [], []]
    async for i in aiter_checkpointed(range(10)):
        record(log, f"shard:{i}")
        shards[i % 3].append(i * 10)
    return shards


SALES = [
    ("eu", "fr", 120),
    ("eu", "de", 80),
    ("us", "ny", 200),
    ("eu", "fr", 30),
    ("apac", "jp", 90),
    ("us", "ca", 60),
    ("us", "ny", 15),
    ("apac", "sg", 45),
    ("eu", "de", 5),
]


@exact()
@resumable
async def nested_tree(log: str) -> dict[str, dict[str, int]]:
    """`tree[region][country] = ...` with the inner dict made on first use."""
    tree: dict[str, dict[str, int]] = {}
    async for n, (region, country, amount) in aiter_checkpointed(enumerate(SALES)):
        record(log, f"sale:{n}")
        if region not in tree:
            tree[region] = {}
        tree[region][country] = tree[region].get(country, 0) + amount
    return tree


@exact()
@resumable
async def entry_alias(log: str) -> dict[str, dict[str, object]]:
    """An entry read into a temporary and changed through it:
    `entry = totals[region]; entry["count"] += 1`."""
    totals = {region: {"count": 0, "amount": 0, "countries": []} for region in ("eu", "us", "apac")}
    async for n, (region, country, amount) in aiter_checkpointed(enumerate(SALES)):
        record(log, f"entry:{n}")
        entry = totals[region]
        entry["count"] += 1
        entry["amount"] += amount
        if country not in entry["countries"]:
            entry["countries"].append(country)
    return totals


@exact()
@resumable
async def matrix_cells(log: str) -> list[list[int]]:
    """A 2-D list (grid) updated cell by cell: `grid[r][c] += v`."""
    grid = [[0] * 4 for _ in range(3)]
    async for i in aiter_checkpointed(range(12)):
        record(log, f"cell:{i}")
        grid[i % 3][i * 7 % 4] += i + 1
    return grid
