"""Sequential vs batched: a checkpointed `async for` against `amap` and a
plain `asyncio.gather` (no checkpoints), for 100 items of simulated latency,
on the memory, SQLite and Redis stores. Every item is checkpointed.

Targets (DESIGN §11): with 50 ms items on SQLite, amap(concurrency=100) is at
least 80x faster than the sequential loop; with 20 ms items, amap is at most
1.5x a plain gather of the same sleeps.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments, redis_server, repeat
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
        for latency in (0.05, 0.02):
            ms = int(latency * 1000)
            plain = report.add(
                Sample(
                    f"{ms} ms  asyncio.gather (no checkpoints)",
                    repeat(runs, lambda lat=latency: timed(lambda: gathered(n, lat))),
                )
            )
            for label, url in stores.items():
                store = open_store(url)
                seq_runs = 1 if (args.quick or latency == 0.02) else 2
                seq = report.add(
                    Sample(
                        f"{ms} ms  {label:6s} sequential aiter_checkpointed",
                        repeat(
                            seq_runs,
                            lambda s=store, lat=latency: timed(
                                lambda: sequential.options(store=s)(n, lat)
                            ),
                        ),
                    )
                )
                fan = report.add(
                    Sample(
                        f"{ms} ms  {label:6s} amap(concurrency=100)",
                        repeat(
                            runs,
                            lambda s=store, lat=latency: timed(
                                lambda: batched.options(store=s)(n, lat)
                            ),
                        ),
                    )
                )
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
                asyncio.run(store.close())
    report.show("ms", scale=1000, digits=1)
    report.save("batching")


if __name__ == "__main__":
    main()
