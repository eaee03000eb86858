"""Sequential vs batched: a checkpointed `async for` against `amap` and a
plain `asyncio.gather` (no checkpoints), for 100 items of simulated latency,
on the memory, SQLite and Redis stores. Every item is checkpointed.

Targets (README, "Benchmarks"): with 50 ms items on SQLite, amap(concurrency=100) is at
least 80x faster than the sequential loop; with 20 ms items, amap is at most
1.5x a plain gather of the same sleeps.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks._harness import (
    Report,
    Sample,
    arguments,
    interleaved,
    keyed_if_shared,
    redis_server,
    repeat,
)
from resumable import aiter_checkpointed, amap, open_store, resumable


async def call(latency: float) -> float:
    await asyncio.sleep(latency)
    return latency


@resumable
async def sequential(n: int, latency: float) -> int:
    done = 0
    async for _ in aiter_checkpointed(range(n)):
        await call(latency)
        done += 1
    return done


@resumable
async def batched(n: int, latency: float) -> int:
    results = await amap(lambda _: call(latency), range(n), concurrency=100)
    return len(results)


async def gathered(n: int, latency: float) -> int:
    return len(await asyncio.gather(*(call(latency) for _ in range(n))))


def timed(run) -> float:
    began = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - began


def main() -> None:
    args = arguments(__doc__ or "")
    n = 20 if args.quick else 100  # --quick is a smoke run, not the published figure
    runs = 2 if args.quick else 5
    report = Report("Sequential vs batched: 100 items, every item checkpointed", args.quick)
    with tempfile.TemporaryDirectory() as tmp, redis_server(args.redis) as redis_url:
        stores = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "redis": redis_url,
        }
        stores = {k: v for k, v in stores.items() if k in args.stores}
        opened = {label: open_store(url) for label, url in stores.items()}
        for latency in (0.05, 0.02):
            ms = int(latency * 1000)
            # The fast cases in interleaved rounds: their ratio is the target.
            cases = {
                f"{ms} ms  asyncio.gather (no checkpoints)": lambda lat=latency: timed(
                    lambda: gathered(n, lat)
                )
            }
            for label, store in opened.items():
                cases[f"{ms} ms  {label:6s} amap(concurrency=100)"] = keyed_if_shared(
                    label,
                    lambda s=store, lat=latency: timed(lambda: batched.options(store=s)(n, lat)),
                )
            fast = {
                name: report.add(Sample(name, values))
                for name, values in interleaved(runs, cases).items()
            }
            plain = fast[f"{ms} ms  asyncio.gather (no checkpoints)"]
            for label, store in opened.items():
                # n x latency seconds each: one or two runs say enough.
                seq_runs = 1 if (args.quick or latency == 0.02) else 2
                seq = report.add(
                    Sample(
                        f"{ms} ms  {label:6s} sequential aiter_checkpointed",
                        repeat(
                            seq_runs,
                            keyed_if_shared(
                                label,
                                lambda s=store, lat=latency: timed(
                                    lambda: sequential.options(store=s)(n, lat)
                                ),
                            ),
                        ),
                    )
                )
                fan = fast[f"{ms} ms  {label:6s} amap(concurrency=100)"]
                if latency == 0.05 and label == "sqlite":
                    report.target(
                        "amap speed-up over sequential, 50 ms, SQLite",
                        seq.median / fan.median,
                        80,
                        lower_is_better=False,
                        unit="x",
                    )
                if latency == 0.02 and label == "sqlite":
                    report.target(
                        "amap / plain gather, 20 ms, SQLite",
                        fan.median / plain.median,
                        1.5,
                        unit="x",
                    )
        for store in opened.values():
            asyncio.run(store.close())
    report.show("ms", scale=1000, digits=1)
    report.save("batching")


if __name__ == "__main__":
    main()
