"""Peak memory of `amap` over a 1,000,000-item async generator at
concurrency 64, streaming results, every item checkpointed (SQLite).

Measured in a fresh process as the growth of the resident set's high-water
mark (VmHWM) over its value just before the run, so imports and the
interpreter do not count. Target (README, "Benchmarks"): growth < 100 MB.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments

RUNNER = """
import asyncio, sys, time
from benchmarks._harness import quiet_logs  # noqa: F401 - quiets the run
from resumable import amap, open_store, resumable

def high_water_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

async def numbers(n):
    for i in range(n):
        yield i

async def work(i):
    await asyncio.sleep(0)
    return i * 2

@resumable
async def run(n):
    count = total = 0
    async for value in amap(work, numbers(n), concurrency=64):
        count += 1
        total += value
    return count

async def main():
    n, url = int(sys.argv[1]), sys.argv[2]
    store = open_store(url)
    before = high_water_kb()
    began = time.perf_counter()
    assert await run.options(store=store)(n) == n
    print(high_water_kb() - before, time.perf_counter() - began)
    await store.close()
asyncio.run(main())
"""


def main() -> None:
    args = arguments(__doc__ or "")
    n = 50_000 if args.quick else 1_000_000
    report = Report(f"amap over a {n:,}-item async generator, concurrency 64 (SQLite)", args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", RUNNER, str(n), f"sqlite:///{Path(tmp) / 'm.db'}"],
            capture_output=True,
            text=True,
            check=True,
        )
    grown_kb, seconds = out.stdout.strip().splitlines()[-1].split()
    growth = report.add(Sample("peak resident memory growth", [int(grown_kb) / 1024], "MB"))
    report.notes.append(
        f"{n:,} items in {float(seconds):.1f} s "
        f"({float(seconds) / n * 1e6:.1f} us per item, checkpointed)"
    )
    report.target("peak memory growth, MB", growth.median, 100)
    report.show("MB", digits=1)
    report.save("memory")


if __name__ == "__main__":
    main()
