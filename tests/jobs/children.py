"""Child executions: a @resumable function awaited inside another.

`backfill` loops over regions and awaits `region` for each; every region is
a child execution with a checkpointed loop of its own. Side effects go to a
log file (one line per loop-body run), so crash tests can count what ran
again after a SIGKILL: `python -m jobs.child STORE ID children.backfill N LOG DELAY`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobs.pipeline import record
from resumable import aiter_checkpointed, amap, resumable, step
from resumable.testing import SimulatedCrash

ITEMS = 6  # iterations of each region's loop

RUNS: list[str] = []  # in-process side effects
FAIL: dict[str, Any] = {}  # region -> the item at which it raises, while set
DIE: dict[str, tuple[int, int]] = {}  # "at": (region, item) where the process "dies" once
GATES: dict[str, asyncio.Event] = {}
SWITCH: dict[str, Any] = {"step_first": False, "explicit_id": "first-id"}


def ran(tag: str) -> None:
    # Test instrumentation lives in functions: module state a loop body
    # changes itself is carried (and would be put back on resume).
    RUNS.append(tag)


def _die_at(r: int, j: int) -> None:
    if DIE.get("at") == (r, j):
        del DIE["at"]
        raise SimulatedCrash(0)  # like SIGKILL: nothing is recorded


@resumable
async def region(r: int, items: int, log_path: str, delay: float) -> int:
    total = 0
    async for j in aiter_checkpointed(range(items)):
        await asyncio.sleep(delay)
        _die_at(r, j)
        if FAIL.get(f"region:{r}") == j:
            raise RuntimeError(f"region {r} failed at item {j}")
        if log_path:
            record(log_path, f"region:{r}:{j}")
        ran(f"region:{r}:{j}")
        total += r * 100 + j
    return total


@resumable
async def backfill(n: int, log_path: str, delay: float) -> dict[str, object]:
    totals = []
    async for r in aiter_checkpointed(range(n)):
        totals.append(await region(r, ITEMS, log_path, delay))
        if log_path:
            record(log_path, f"backfill:{r}")
        ran(f"backfill:{r}")
    return {"totals": totals, "sum": sum(totals)}


def expected(n: int) -> dict[str, object]:
    totals = [sum(r * 100 + j for j in range(ITEMS)) for r in range(n)]
    return {"totals": totals, "sum": sum(totals)}


def tags(n: int) -> list[str]:
    return [f"region:{r}:{j}" for r in range(n) for j in range(ITEMS)] + [
        f"backfill:{r}" for r in range(n)
    ]


@resumable
async def leaf(x: int) -> int:
    RUNS.append(f"leaf:{x}")
    return x * x


@resumable
async def straight(n: int) -> list[int]:
    """Children called in sequence, outside any loop: positions #0, #1, ..."""
    return [await leaf(i) for i in range(n)]


@resumable
async def middle(x: int) -> int:
    """A child that has children: grandchildren of the caller."""
    return await leaf(x) + await leaf(x + 1)


@resumable
async def three_levels(n: int) -> list[int]:
    out = []
    async for i in aiter_checkpointed(range(n)):
        out.append(await middle(i))
    return out


@resumable
async def fan_out(n: int) -> list[int]:
    """A child per amap item: each item is a scope of its own."""
    return await amap(leaf, range(n), concurrency=4)


@resumable
async def named(x: int) -> int:
    """A child with an id the caller chose."""
    return await leaf.options(execution_id=f"leaf-for-{x}")(x)


@resumable
async def explicit(x: int) -> int:
    """A child whose explicit id comes from SWITCH (a test changes it)."""
    return await leaf.options(execution_id=SWITCH["explicit_id"])(x)


@step
async def noted(x: int) -> int:
    RUNS.append(f"noted:{x}")
    return x


@resumable
async def switching(x: int) -> int:
    """Reaches a step where a child was recorded when SWITCH says so."""
    if SWITCH["step_first"]:
        return await noted(x)
    return await leaf(x)


@resumable
async def gated(name: str) -> str:
    RUNS.append(f"gated:{name}")
    await GATES[name].wait()
    return f"opened {name}"


@resumable
async def waits_on_child(name: str) -> str:
    return "parent got " + await gated(name)


@resumable
async def catches(r: int) -> str:
    """Catches its child's failure and goes on."""
    try:
        total = await region(r, 3, "", 0.0)
    except RuntimeError as exc:
        return f"fallback after {exc}"
    return f"total {total}"


@resumable
async def detached(name: str) -> str:
    """Starts a child and awaits its Execution later."""
    run = await gated.start(name)
    RUNS.append(f"started {run.id}")
    return await run.result()


@resumable(store="memory://")
async def elsewhere(x: int) -> int:
    return x


@resumable
async def calls_elsewhere(x: int) -> int:
    return await elsewhere(x)
