"""Checkpoint overhead per loop iteration, against the raw store operation
measured in the same run.

* memory: the checkpointed loop minus the same plain loop (target <= 5 us);
* SQLite: against a raw INSERT OR REPLACE + COMMIT with the same pragmas
  (WAL, synchronous=NORMAL) on the same kind of file (target <= 1.5x);
* Redis: against a raw awaited SET round trip (target <= 1.5x), and the
  per-item cost of amap checkpoints under group commit against one command
  in a pipeline (target <= 2x).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments, redis_server, repeat

from resumable import aiter_checkpointed, amap, open_store, resumable


@resumable
async def counter_loop(n: int) -> int:
    total = 0
    async for i in aiter_checkpointed(range(n)):
        total += i
    return total


@resumable
async def appending_loop(n: int) -> int:
    results = []
    async for i in aiter_checkpointed(range(n)):
        results.append(i)
    return len(results)


async def plain_loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def per_iteration(function, store, n: int) -> float:
    """Seconds per iteration of the checkpointed loop minus the plain loop."""
    began = time.perf_counter()
    asyncio.run(plain_loop(n))
    plain = time.perf_counter() - began
    began = time.perf_counter()
    asyncio.run(function.options(store=store)(n))
    return (time.perf_counter() - began - plain) / n


def raw_sqlite(path: Path, n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID")
    value = b"x" * 64
    began = time.perf_counter()
    for _ in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT OR REPLACE INTO t VALUES (?, ?)", ("#0", value))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - began
    db.close()
    return elapsed / n


async def raw_redis(url: str, n: int, pipelined: bool) -> float:
    import redis.asyncio as redis

    client = redis.from_url(url)
    value = b"x" * 64
    await client.set("bench:warm", value)
    began = time.perf_counter()
    if pipelined:
        pipe = client.pipeline(transaction=False)
        for _ in range(n):
            pipe.set("bench:k", value)
        await pipe.execute()
    else:
        for _ in range(n):
            await client.set("bench:k", value)
    elapsed = time.perf_counter() - began
    await client.aclose()
    return elapsed / n


@resumable
async def fan_out(n: int) -> int:
    async def nothing(i: int) -> int:
        return i

    return len(await amap(nothing, range(n), concurrency=64))


def per_item(store, n: int) -> float:
    async def plain() -> None:
        async def nothing(i: int) -> int:
            return i

        await asyncio.gather(*(nothing(i) for i in range(n)))

    began = time.perf_counter()
    asyncio.run(plain())
    baseline = time.perf_counter() - began
    began = time.perf_counter()
    asyncio.run(fan_out.options(store=store)(n))
    return (time.perf_counter() - began - baseline) / n


def main() -> None:
    args = arguments(__doc__ or "")
    n = 2000 if args.quick else 20000
    runs = 2 if args.quick else 5
    report = Report("Checkpoint overhead per iteration vs the raw store write", args.quick)
    with tempfile.TemporaryDirectory() as tmp, redis_server(args.redis) as redis_url:
        if "memory" in args.stores:
            store = open_store("memory://")
            counter = report.add(Sample("memory: loop carrying a counter",
                                        repeat(runs, lambda: per_iteration(counter_loop, store, n))))
            report.add(Sample("memory: loop appending to a list (delta records)",
                              repeat(runs, lambda: per_iteration(appending_loop, store, n))))
            report.target("memory checkpoint overhead (counter loop), us", counter.median * 1e6, 5)
        if "sqlite" in args.stores:
            store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            raw = report.add(Sample("sqlite: raw INSERT+COMMIT (WAL, NORMAL)",
                                    repeat(runs, lambda: raw_sqlite(Path(tmp) / "raw.db", n))))
            loop = report.add(Sample("sqlite: checkpointed loop, per iteration",
                                     repeat(runs, lambda: per_iteration(counter_loop, store, n))))
            report.target("SQLite loop / raw insert+commit", loop.median / raw.median, 1.5, unit="x")
            asyncio.run(store.close())
        if "redis" in args.stores:
            store = open_store(redis_url)
            raw = report.add(Sample("redis: raw awaited SET",
                                    repeat(runs, lambda: asyncio.run(raw_redis(redis_url, n, False)))))
            piped = report.add(Sample("redis: raw SET in a pipeline, per command",
                                      repeat(runs, lambda: asyncio.run(raw_redis(redis_url, n, True)))))
            loop = report.add(Sample("redis: checkpointed loop, per iteration",
                                     repeat(runs, lambda: per_iteration(counter_loop, store, n))))
            items = report.add(Sample("redis: amap item checkpoint, group commit (64 concurrent)",
                                      repeat(runs, lambda: per_item(store, n))))
            report.target("Redis loop / raw awaited SET", loop.median / raw.median, 1.5, unit="x")
            report.target("Redis amap item / pipelined SET", items.median / piped.median, 2, unit="x")
            asyncio.run(store.close())
    report.show("us", scale=1e6, digits=1)
    report.save("checkpoint")


if __name__ == "__main__":
    main()
