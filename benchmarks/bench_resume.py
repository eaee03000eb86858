"""Resume of a loop with 100,000 finished iterations: the time from calling
`resume()` to the first new iteration, on SQLite, in a fresh process.

The loop appends a 200-byte result per iteration, so resuming must also
rebuild a 100,000-item list from its delta records.
Target (DESIGN §11): within 0.3 s. (DBOS re-runs the workflow and replays
every recorded step.)
"""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments
from resumable import aiter_checkpointed, open_store, resumable
from resumable.testing import SimulatedCrash, crash_after

FIRST_NEW: list[float] = []


def mark_first_new() -> None:
    # In a function: a global the loop body changed itself would be carried,
    # and a resume would bring back the first run's time.
    if not FIRST_NEW:
        FIRST_NEW.append(time.perf_counter())


@resumable
async def long_loop(n: int) -> int:
    results = []
    total = 0
    async for i in aiter_checkpointed(range(n)):
        mark_first_new()
        results.append(f"{i:08d}".ljust(200, "x"))
        total += i
    return len(results) + total


RESUMER = """
import asyncio, sys, time
from benchmarks import bench_resume  # imports the harness, which quiets the logs
from resumable import resume
async def main():
    began = time.perf_counter()
    await resume(sys.argv[1], store=sys.argv[2])
    print(bench_resume.FIRST_NEW[0] - began)
asyncio.run(main())
"""


def prepare(url: str, finished: int) -> str:
    """Run `finished` iterations, then crash before the next checkpoint."""
    execution_id = uuid.uuid4().hex

    # Through its module name, not __main__: the resuming process imports it.
    job = importlib.import_module("benchmarks.bench_resume").long_loop

    async def go() -> None:
        store = open_store(url)
        with crash_after(finished):
            try:
                await job.options(execution_id=execution_id, store=store)(finished + 10)
            except SimulatedCrash as crash:
                assert crash.lease is not None
                await store.release(crash.lease)
        await store.close()

    asyncio.run(go())
    return execution_id


def main() -> None:
    args = arguments(__doc__ or "")
    finished = 10_000 if args.quick else 100_000
    runs = 2 if args.quick else 5
    report = Report(f"Resume of a loop with {finished:,} finished iterations (SQLite)", args.quick)
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'resume.db'}"
        began = time.perf_counter()
        ids = [prepare(url, finished) for _ in range(runs)]
        report.notes.append(
            f"setup: {runs} runs of {finished:,} checkpointed iterations took "
            f"{time.perf_counter() - began:.1f} s"
        )
        for execution_id in ids:
            out = subprocess.run(
                [sys.executable, "-c", RESUMER, execution_id, url],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds.append(float(out.stdout.strip().splitlines()[-1]))
    sample = report.add(Sample("resume() to the first new iteration, fresh process", seconds))
    report.target("resume to first new iteration, s", sample.median, 0.3)
    report.show("s", digits=3)
    report.save("resume")


if __name__ == "__main__":
    main()
