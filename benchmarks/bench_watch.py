"""Watching a big fan-out: what `status()` / `resumable show --follow` cost.

A fan-out of 1,000,000 trivial items (--quick: 50,000) on SQLite, every
item checkpointed. A watcher is another process calling `status()` every
0.5 s, as `show --follow` does; it reads the fan-out's header (which carries
the item counts) through `Store.load_headers`, never the item records.

Targets: (a) the run's wall time with a watcher is at most 1.05x without
one (runs side by side, interleaved, each on a fresh database file): the
watcher costs the run nothing measurable; (b) one refresh costs less than
one full `store.load()` of the same execution (ratio <= 1).

`python -m benchmarks.bench_watch [--quick]`
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments, interleaved, repeat
from resumable import ExecutionNotFound, SQLiteStore, amap, resumable, status

INTERVAL = 0.5
CONCURRENCY = 100
EXECUTION = "watched-fanout"


async def _one(x: int) -> int:
    return x


@resumable(keep_checkpoints=True)  # the item records stay, for the load() comparison
async def fan(n: int) -> int:
    return len(await amap(_one, range(n), concurrency=CONCURRENCY))


async def _watch(path: str, interval: float) -> None:
    """The watcher process: status() every `interval` until the run ends;
    prints the seconds each refresh took (JSON) on its last line."""
    store = SQLiteStore(path)
    print("ready", flush=True)
    took: list[float] = []
    seen = 0
    while True:
        began = time.perf_counter()
        try:
            found = await status(EXECUTION, store=store)
        except ExecutionNotFound:  # not created yet
            await asyncio.sleep(0.02)
            continue
        took.append(time.perf_counter() - began)
        if found.fanouts:
            seen = found.fanouts[0].done
        if found.status != "running":
            break
        await asyncio.sleep(interval)
    await store.close()
    print(json.dumps({"refreshes": took, "last_done": seen}), flush=True)


def run_once(n: int, tmp: str, *, watched: bool, refreshes: list[float]) -> float:
    """Wall time of one run of `fan(n)` on a fresh database file."""
    path = Path(tmp) / f"run-{time.monotonic_ns()}.db"
    SQLiteStore(path)  # create the file and schema before the watcher opens it
    watcher = None
    if watched:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_watch", "--watch", str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "ready"

    async def go() -> float:
        store = SQLiteStore(path)
        began = time.perf_counter()
        assert await fan.options(store=store, execution_id=EXECUTION)(n) == n
        took = time.perf_counter() - began
        await store.close()
        return took

    took = asyncio.run(go())
    if watcher is not None:
        out, _ = watcher.communicate(timeout=120)
        data = json.loads(out.strip().splitlines()[-1])
        assert data["last_done"] == n, data
        refreshes += data["refreshes"]
    for leftover in Path(tmp).glob(path.name + "*"):
        leftover.unlink()
    return took


def refresh_vs_load(n: int, tmp: str, runs: int) -> tuple[Sample, Sample, Sample]:
    """status() and load() of one finished execution of n items (kept)."""
    path = Path(tmp) / "measured.db"

    async def prepare() -> None:
        store = SQLiteStore(path)
        await fan.options(store=store, execution_id=EXECUTION)(n)
        await store.close()

    asyncio.run(prepare())

    def timed(what: str) -> float:
        async def go() -> float:
            store = SQLiteStore(path)
            began = time.perf_counter()
            if what == "status":
                await status(EXECUTION, store=store)
            elif what == "headers":
                await store.load_headers(EXECUTION)
            else:
                assert len(await store.load(EXECUTION)) > n
            took = time.perf_counter() - began
            await store.close()
            return took

        return asyncio.run(go())

    return (
        Sample(
            "status() of the finished run (one refresh)", repeat(runs * 5, lambda: timed("status"))
        ),
        Sample("store.load_headers() alone", repeat(runs * 5, lambda: timed("headers"))),
        Sample("store.load() (every record)", repeat(runs, lambda: timed("load"))),
    )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--watch":
        asyncio.run(_watch(sys.argv[2], INTERVAL))
        return
    args = arguments(__doc__ or "")
    n = 50_000 if args.quick else 1_000_000
    runs = 2 if args.quick else 3
    report = Report(
        f"Watching a fan-out of {n:,} items on SQLite, status() every 0.5 s", args.quick
    )
    refreshes: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "run, nobody watching (s)": lambda: run_once(n, tmp, watched=False, refreshes=[]),
            "run, a watcher process (s)": lambda: run_once(
                n, tmp, watched=True, refreshes=refreshes
            ),
        }
        walls = {
            name: report.add(Sample(name, values))
            for name, values in interleaved(runs, cases).items()
        }
        alone, watched = walls.values()
        report.target("run with a watcher / without", watched.median / alone.median, 1.05, unit="x")
        during = report.add(Sample("watcher refresh during the runs (s)", refreshes))
        one, headers, load = refresh_vs_load(n, tmp, runs)
        for sample in (one, headers, load):
            report.add(sample)
        report.target(
            "one refresh (status) / one full load()", one.median / load.median, 1.0, unit="x"
        )
        report.notes.append(
            f"{len(refreshes)} refreshes during the runs: median "
            f"{statistics.median(refreshes) * 1000:.2f} ms, max {max(refreshes) * 1000:.2f} ms; "
            f"one full load() {load.median * 1000:.0f} ms"
        )
        report.notes.append(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
        del during
    report.show("s", digits=4)
    report.save("watch")


if __name__ == "__main__":
    main()
