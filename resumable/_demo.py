"""`resumable demo`: a pipeline killed with SIGKILL part-way, then resumed.

200 documents go through a simulated slow API (an LLM, say) in a
checkpointed loop on the embedded SQLite store. A child process runs it and
is killed with SIGKILL part-way; a second, fresh process resumes it by id.
Every call of the "API" is logged to a file, so we can show that no finished
document was sent twice.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import structlog

from resumable import aiter_checkpointed, resumable

DOCUMENTS = 200
API_LATENCY = 0.01  # seconds per simulated call


async def summarize(doc: str, calls_log: str) -> str:
    """The expensive call: slow, and it leaves a trace we can count."""
    await asyncio.sleep(API_LATENCY)
    with open(calls_log, "a", encoding="utf-8") as log:
        log.write(doc + "\n")
    return f"summary of {doc} ({len(doc)} chars)"


@resumable
async def digest(docs: list[str], calls_log: str) -> dict[str, object]:
    summaries = []
    chars = 0
    async for doc in aiter_checkpointed(docs):
        summary = await summarize(doc, calls_log)
        summaries.append(summary)
        chars += len(summary)
    return {"documents": len(summaries), "chars": chars, "last": summaries[-1]}


def _quiet() -> None:
    """The story is the output here; the library's INFO lines would interleave."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _child(store: str, execution_id: str, calls_log: str) -> None:
    """Runs in the child process that will be killed."""
    _quiet()
    docs = [f"doc-{i:03d}" for i in range(DOCUMENTS)]
    asyncio.run(digest.options(execution_id=execution_id)(docs, calls_log))


def _resume(store: str, execution_id: str) -> object:
    from resumable import resume, status

    async def go() -> tuple[object, int]:
        before = await status(execution_id, store=store)
        done = before.progress[0].done if before.progress else 0
        return await resume(execution_id, store=store), done

    result, done = asyncio.run(go())
    print(f"  resumed at document {done} (the first unfinished one)")
    return result


def main(kill_after: int = 80) -> int:
    _quiet()
    # The embedded default store, so `resumable list` / `show` find the run after.
    workdir = Path(".resumable").resolve()
    workdir.mkdir(exist_ok=True)
    store = f"sqlite:///{workdir / 'state.db'}"
    execution_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    calls_log = str(workdir / f"{execution_id}-api-calls.log")
    print(f"resumable demo: {DOCUMENTS} documents through a slow API ({API_LATENCY * 1000:.0f} ms")
    print(f"per call), checkpointed in {store}")
    print(f"1. a child process starts execution {execution_id!r}")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from resumable._demo import _child; _child({store!r}, "
            f"{execution_id!r}, {calls_log!r})",
        ],
    )
    deadline = time.monotonic() + 60
    while _count_lines(calls_log) < kill_after and child.poll() is None:
        if time.monotonic() > deadline:
            child.kill()
            print("the child made no progress in 60 s", file=sys.stderr)
            return 1
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = _count_lines(calls_log)
    print(f"2. killed it with SIGKILL after {killed_at} API calls (no clean-up ran)")
    print("3. a fresh process resumes it by id:")
    result = _resume(store, execution_id)
    calls = collections.Counter(Path(calls_log).read_text(encoding="utf-8").split())
    twice = sorted(doc for doc, n in calls.items() if n > 1)
    print(f"  result: {result}")
    print(f"4. the API was called {sum(calls.values())} times for {len(calls)} documents")
    if len(calls) != DOCUMENTS:
        print(f"  ERROR: {DOCUMENTS - len(calls)} documents were never processed")
        return 1
    if len(twice) > 1:
        print(f"  ERROR: finished documents ran twice: {twice}")
        return 1
    if twice:
        print(f"  {twice[0]} ran twice: it was in flight at the kill (at-least-once);")
    print("  no document whose checkpoint was written ran again.")
    return 0


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
