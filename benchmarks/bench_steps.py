"""Per-step overhead of `@step` against a plain call and against DBOS
Transact's `@DBOS.step()` on the same SQLite settings (WAL,
synchronous=NORMAL), and DBOS as it ships (rollback journal).

Target (README, "Benchmarks"): our per-step overhead <= 1/30 of DBOS's.
DBOS is an optional benchmark dependency: `pip install -e '.[bench]'`
(`make bench` installs it). Without it, this script says so and measures
only our own figures.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments, overhead_per_unit, repeat
from resumable import open_store, resumable, step


async def work(i: int) -> int:
    return i


@step
async def journaled(i: int) -> int:
    return i


@resumable
async def many_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await journaled(i)
    return total


async def plain_calls(n: int) -> int:
    total = 0
    for i in range(n):
        total += await work(i)
    return total


def ours(store, n: int) -> float:
    return overhead_per_unit(n, lambda: plain_calls(n), lambda: many_steps.options(store=store)(n))


DBOS_RUNNER = r"""
import asyncio, sys, time
mode, path, n, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "wal":
    import sqlite3
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").fetchone()  # persistent in the file

    @event.listens_for(Engine, "connect")
    def _normal(connection, _record):
        connection.execute("PRAGMA synchronous=NORMAL")
from dbos import DBOS
DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{path}"})

@DBOS.step()
async def journaled(i: int) -> int:
    return i

@DBOS.workflow()
async def many_steps(n: int) -> int:
    total = 0
    for i in range(n):
        total += await journaled(i)
    return total

async def work(i):
    return i

async def main():
    DBOS.launch()
    await many_steps(10)  # warm up
    for _ in range(runs):
        began = time.perf_counter()
        total = 0
        for i in range(n):
            total += await work(i)
        plain = time.perf_counter() - began
        began = time.perf_counter()
        await many_steps(n)
        print((time.perf_counter() - began - plain) / n, flush=True)
asyncio.run(main())
"""


def dbos(mode: str, tmp: str, n: int, runs: int) -> list[float] | None:
    try:
        import dbos as _  # noqa: F401
    except ImportError:
        return None
    path = str(Path(tmp) / f"dbos-{mode}.sqlite")
    out = subprocess.run(
        [sys.executable, "-c", DBOS_RUNNER, mode, path, str(n), str(runs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "DBOS__CLOUD": "false"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"DBOS run failed:\n{out.stderr[-2000:]}")
    return [float(line) for line in out.stdout.split()]


def main() -> None:
    args = arguments(__doc__ or "")
    n = 200 if args.quick else 2000
    runs = 2 if args.quick else 5
    report = Report("Per-step overhead: @step vs a plain call vs DBOS Transact", args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
        mine = report.add(
            Sample("resumable @step, SQLite (WAL, NORMAL)", repeat(runs, lambda: ours(store, n)))
        )
        report.add(
            Sample(
                "resumable @step, memory store",
                repeat(runs, lambda: ours(open_store("memory://"), n)),
            )
        )
        asyncio.run(store.close())
        wal = dbos("wal", tmp, n // 4, runs)
        if wal is None:
            report.notes.append(
                "DBOS Transact is not installed, so there is no side-by-side figure: "
                "pip install -e '.[bench]' (make bench does) and run again"
            )
        else:
            theirs = report.add(Sample("DBOS @DBOS.step (async), SQLite WAL + NORMAL", wal))
            shipped = dbos("shipped", tmp, n // 4, runs)
            assert shipped is not None
            report.add(Sample("DBOS @DBOS.step (async), SQLite as it ships", shipped))
            report.target(
                "our step overhead / DBOS's (same SQLite settings)",
                mine.median / theirs.median,
                1 / 30,
            )
    report.show("us", scale=1e6, digits=1)
    report.save("steps")


if __name__ == "__main__":
    main()
