"""Resumable functions with amap, agather and steps, for batch tests.

Side effects are counted in CALLS (in-process tests) or in a log file
(subprocess tests) so tests can tell which items and steps really ran.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import resumable
from resumable import Retry, agather, aiter_checkpointed, amap, step

CALLS: Counter[str] = Counter()
FLAGS: dict[str, object] = {}


def record(log_path: str | None, tag: str) -> None:
    if log_path is None:
        CALLS[tag] += 1
        return
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(tag + "\n")


async def _square(x: int, log_path: str | None, delay: float) -> int:
    await asyncio.sleep(delay * (1 + x % 3))
    record(log_path, f"item:{x}")
    return x * x


@resumable.resumable
async def mapped(n: int, log_path: str | None = None, delay: float = 0.0) -> list[int]:
    return await amap(lambda x: _square(x, log_path, delay), range(n), concurrency=8)


async def _named(i: int, log_path: str | None, delay: float) -> str:
    await asyncio.sleep(delay * (1 + i % 4))
    record(log_path, f"gather:{i}")
    return f"r{i}"


@resumable.resumable
async def gathered(n: int, log_path: str | None = None, delay: float = 0.0) -> list[str]:
    return await agather(*(_named(i, log_path, delay) for i in range(n)))


@step
async def fetch_config(log_path: str | None, delay: float) -> dict[str, int]:
    await asyncio.sleep(delay)
    record(log_path, "step:config")
    return {"factor": 3}


@step
async def publish(total: int, log_path: str | None, delay: float) -> str:
    await asyncio.sleep(delay)
    record(log_path, f"step:publish:{total}")
    return f"published {total}"


@resumable.resumable
async def pipeline(n: int, log_path: str | None = None, delay: float = 0.0) -> dict[str, object]:
    """A step, a loop, a step between loops, an amap and an agather."""
    config = await fetch_config(log_path, delay)
    total = 0
    async for i in aiter_checkpointed(range(n)):
        await asyncio.sleep(delay)
        record(log_path, f"loop:{i}")
        total += i * config["factor"]
    note = await publish(total, log_path, delay)
    squares = await amap(lambda x: _square(x, log_path, delay), range(n), concurrency=4)
    tail = await agather(_named(0, log_path, delay), lambda: _named(1, log_path, delay))
    return {"total": total, "note": note, "squares": squares, "tail": tail}


@step(memoize=True, key=lambda region: region)
async def exchange_rate(region: str) -> float:
    CALLS[f"rate:{region}"] += 1
    await asyncio.sleep(0.01)
    return {"eu": 1.1, "us": 1.0}[region]


async def _price(i: int) -> float:
    rate = await exchange_rate("eu" if i % 2 else "us")
    return round(i * rate, 2)


@resumable.resumable
async def priced(n: int) -> list[float]:
    return await amap(_price, range(n), concurrency=200)


@step
async def flaky(i: int) -> int:
    CALLS[f"flaky:{i}"] += 1
    if CALLS[f"flaky:{i}"] < 3:
        raise ConnectionError(f"attempt {CALLS[f'flaky:{i}']} failed")
    return i


@resumable.resumable
async def retried(n: int, attempts: int) -> list[int]:
    policy = Retry(attempts=attempts, on=ConnectionError, wait_initial=0.001, wait_jitter=0)
    return await amap(flaky, range(n), retries=policy)


@step
async def branch_a() -> str:
    return "a"


@step
async def branch_b() -> str:
    return "b"


@resumable.resumable
async def divergent() -> list[str]:
    first = await (branch_a() if FLAGS.get("first") == "a" else branch_b())
    results = [first]
    async for i in aiter_checkpointed(range(3)):
        results.append(str(i))
    return results


@resumable.resumable
async def journaled() -> dict[str, object]:
    stamp = resumable.now()
    ident = resumable.uuid4()
    draw = resumable.random()
    await resumable.sleep(float(FLAGS.get("sleep", 0.0)))  # type: ignore[arg-type]
    keys = []
    async for i in aiter_checkpointed(range(3)):
        keys.append(i)
    return {"now": stamp, "uuid": str(ident), "random": draw}


async def _rows_of(item: int) -> int:
    acc = 0
    async for j in aiter_checkpointed(range(5)):
        await asyncio.sleep(0.001 * ((item + j) % 3))  # items interleave
        record(None, f"inner:{item}:{j}")  # a side effect outside the loop's own state
        acc += item * 10 + j
    return acc


@resumable.resumable
async def loops_in_items(n: int) -> list[int]:
    return await amap(_rows_of, range(n), concurrency=n)
