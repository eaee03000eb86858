"""Executions holding every kind of record a resume reads, for the tampering
tests (test_planted_pickles, test_flipped_bytes).

`everything` journals a time and a uuid, runs a step, a memoized step, an
`amap`, an `agather` and a child execution, then a loop carrying a list, a
dict, a set and an int (over FOLD iterations: its list deltas are folded
into a chunk). In the iteration where `DIE_ENV` names it, it runs a step and
then SIGKILLs its own process: a dead execution that a resume must rebuild
from all of those records. The kill is read from the environment, not from
the arguments, so a resume (which never has it set) runs to the end.

`build(STORE_URL)`, in a process of its own, builds every execution the tests tamper
with in that store and prints their ids as JSON (the killed one last: its
process dies, so the ids go out first).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from resumable import agather, aiter_checkpointed, amap, now, resumable, step, uuid4

N = 1040  # > deltas.FOLD: the list is folded into a chunk
DIE_AT = 1020
DIE_ENV = "RESUMABLE_TEST_DIE_AT"

IDS = {
    "killed": "tamper-killed",
    "completed": "tamper-completed",
    "failed": "tamper-failed",
}


class Box:
    """A value that is not plain data: stored as a pickle."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Box) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _maybe_die(i: int) -> None:
    if os.environ.get(DIE_ENV) == str(i):
        os.kill(os.getpid(), signal.SIGKILL)


@step
async def fetch(x: Any) -> dict[str, Any]:
    return {"fetched": x, "box": Box(7)}


@step(memoize=True)
async def lookup(x: int) -> int:
    return x * 3


async def square(x: int) -> int:
    await asyncio.sleep(0)
    return x * x


async def seven() -> int:
    return 7


async def boxed() -> Box:
    return Box(8)


@resumable
async def leaf(x: int) -> int:
    return x + 1000


@resumable
async def everything(n: int, die_at: int, tag: str) -> dict[str, Any]:
    stamp = now()
    ident = uuid4()
    fetched = await fetch(tag)
    memo = await lookup(5)
    squares = await amap(square, range(4), concurrency=2)
    gathered = await agather(seven, boxed)
    child = await leaf(1)
    log: list[int] = []
    table: dict[int, int] = {}
    seen: set[int] = set()
    total = 0
    async for i in aiter_checkpointed(range(n)):
        log.append(i)
        table[i % 7] = i
        seen.add(i % 5)
        total += i
        if i == die_at:
            await fetch(i)  # a step in the iteration the kill interrupts
            _maybe_die(i)
    return {
        "stamp": stamp,
        "ident": str(ident),
        "fetched": fetched["fetched"],
        "box": fetched["box"].value,
        "memo": memo,
        "squares": squares,
        "gathered": [gathered[0], gathered[1].value],
        "child": child,
        "log": [len(log), sum(log), log[-3:]],
        "table": sorted(table.items()),
        "seen": sorted(seen),
        "total": total,
    }


def expected_without_journal(n: int) -> dict[str, Any]:
    """What `everything(n, ...)` returns, but its journaled stamp and ident."""
    log = list(range(n))
    table = {i % 7: i for i in range(n)}
    return {
        "fetched": "t",
        "box": 7,
        "memo": 15,
        "squares": [0, 1, 4, 9],
        "gathered": [7, 8],
        "child": 1001,
        "log": [n, sum(log), log[-3:]],
        "table": sorted(table.items()),
        "seen": sorted({i % 5 for i in range(n)}),
        "total": sum(log),
    }


@resumable
async def finished(label: str) -> dict[str, Any]:
    return {"label": label, "box": Box(3)}


@resumable
async def failing(label: str) -> None:
    raise ValueError(f"failing {label}")


def build(store: str) -> None:
    """Run in a process of its own (it dies): not as __main__, whose functions
    a resume in another process could not import."""
    asyncio.run(_build(store))


async def _build(store: str) -> None:
    await finished.options(execution_id=IDS["completed"], store=store)("done")
    with contextlib.suppress(ValueError):
        await failing.options(execution_id=IDS["failed"], store=store)("boom")
    print(json.dumps(IDS), flush=True)
    os.environ[DIE_ENV] = str(DIE_AT)
    await everything.options(execution_id=IDS["killed"], store=store)(N, DIE_AT, "t")
    raise SystemExit("the job was to be killed, and finished")
