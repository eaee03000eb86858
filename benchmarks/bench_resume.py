"""Resume and inspection of long loops on SQLite, each in a fresh process:

* resume of a loop with 100,000 finished iterations that appended a 200-byte
  result each: `resume()` to the first new iteration, target <= 0.1 s (the
  list is rebuilt from its base, 100 chunks of 1,000 folded deltas, and the
  deltas since the last fold);
* the same with 1,000,000 finished iterations appending small ints: <= 1.0 s;
* the 100,000-iteration execution once completed: what `resumable show
  --json` does (status and progress from headers, rendered), in process,
  target <= 50 ms; and the store's bytes for it against the result's, target
  <= 1.1x (compaction at completion keeps a summary, not the deltas).
(DBOS re-runs the workflow and replays every recorded step.)
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


@resumable
async def int_loop(n: int) -> int:
    seen = []
    async for i in aiter_checkpointed(range(n)):
        mark_first_new()
        seen.append(i)
    return len(seen)


@resumable
async def kept_results(n: int) -> list[str]:
    results = []
    async for i in aiter_checkpointed(range(n)):
        # 150 bytes: 100,000 of them stay under the store's 16 MB record cap.
        results.append(f"{i:08d}".ljust(150, "x"))
    return results


SHOWER = """
import asyncio, io, sys, time
from benchmarks import bench_resume
from resumable._executions import snapshot
from resumable._cli import formatting, show
from resumable.stores import open_store
async def main():
    store = open_store(sys.argv[2])
    began = time.perf_counter()
    snap = await snapshot(sys.argv[1], store, relations=True)
    formatting.dump(show.show_json(snap), io.StringIO())
    print(time.perf_counter() - began)
    await store.close()
asyncio.run(main())
"""


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


def prepare(url: str, finished: int, name: str = "long_loop") -> str:
    """Run `finished` iterations, then crash before the next checkpoint."""
    execution_id = uuid.uuid4().hex

    # Through its module name, not __main__: the resuming process imports it.
    job = getattr(importlib.import_module("benchmarks.bench_resume"), name)

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


def in_fresh_process(script: str, *args: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"the measuring process failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = arguments(__doc__ or "")
    finished = 10_000 if args.quick else 100_000
    small = 100_000 if args.quick else 1_000_000
    runs = 2 if args.quick else 5
    report = Report(
        f"Resume of loops with {finished:,} and {small:,} finished iterations (SQLite)", args.quick
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'resume.db'}"
        began = time.perf_counter()
        ids = [prepare(url, finished) for _ in range(runs)]
        small_ids = [prepare(url, small, "int_loop") for _ in range(max(2, runs // 2))]
        report.notes.append(
            f"setup: {runs} runs of {finished:,} and {len(small_ids)} of {small:,} "
            f"checkpointed iterations took {time.perf_counter() - began:.1f} s"
        )
        seconds = [in_fresh_process(RESUMER, execution_id, url) for execution_id in ids]
        small_seconds = [in_fresh_process(RESUMER, execution_id, url) for execution_id in small_ids]
        done = asyncio.run(_completed(url, finished))
        show_seconds = [in_fresh_process(SHOWER, done, url) for _ in range(runs)]
        stored, result = asyncio.run(_stored_bytes(url, done))
    sample = report.add(
        Sample(f"resume() to the first new iteration, {finished:,} x 200 B", seconds)
    )
    report.target("resume to first new iteration (200-byte results), s", sample.median, 0.1)
    sample = report.add(
        Sample(f"resume() to the first new iteration, {small:,} small ints", small_seconds)
    )
    report.target("resume to first new iteration (small ints), s", sample.median, 1.0)
    sample = report.add(
        Sample(f"show --json of the completed {finished:,}-iteration run", show_seconds)
    )
    report.target("show --json (in process), s", sample.median, 0.05)
    report.target("store bytes after completion / result bytes", stored / result, 1.1, unit="x")
    report.show("s", digits=3)
    report.save("resume")


async def _completed(url: str, n: int) -> str:
    store = open_store(url)
    execution_id = uuid.uuid4().hex
    await kept_results.options(execution_id=execution_id, store=store)(n)
    await store.close()
    return execution_id


async def _stored_bytes(url: str, execution_id: str) -> tuple[int, int]:
    """Everything the store keeps of the execution, and its result's size."""
    store = open_store(url)
    record = await store.get(execution_id)
    assert record is not None
    assert record.result is not None
    kept = sum(len(k) + len(v) for k, v in (await store.load(execution_id)).items())
    kept += len(record.args) + len(record.result) + len(record.fingerprint)
    await store.close()
    return kept, len(record.result)


if __name__ == "__main__":
    main()
