"""`resumable demo`: a pipeline killed with SIGKILL part-way, then resumed.

200 documents go through a simulated slow API (an LLM, say) in a
checkpointed loop on the embedded SQLite store. A child process runs it and
is killed with SIGKILL part-way (its progress is drawn meanwhile from the
store, as `resumable show --follow` does); `resumable show` tells what the
store knows, and `resumable resume ID`, a fresh process, finishes the run.
Every call of the "API" is logged to a file, so we can show that no finished
document was sent twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from resumable import aiter_checkpointed, resumable, status

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
    """The story is the output here; the library's INFO lines would interleave
    (the CLI shows them on stderr)."""
    logging.getLogger("resumable").setLevel(logging.WARNING)


def _child(store: str, execution_id: str, calls_log: str) -> None:
    """Runs in the child process that will be killed."""
    _quiet()
    docs = [f"doc-{i:03d}" for i in range(DOCUMENTS)]
    asyncio.run(digest.options(execution_id=execution_id, store=store)(docs, calls_log))


async def _watch(
    store_url: str, execution_id: str, child: subprocess.Popen[bytes], calls_log: str, stop: int
) -> int:
    """Draw the child's progress as `resumable show --follow` does (read
    from the store, by another process) until `stop` API calls were made."""
    from rich.live import Live

    from resumable._cli import progress
    from resumable._cli.console import console_for
    from resumable._executions import snapshot
    from resumable.errors import ExecutionNotFound
    from resumable.stores import open_store

    store = open_store(store_url)
    console = console_for(sys.stdout)
    bars = progress.Bars(show_location=False)
    deadline = time.monotonic() + 60
    done = 0
    # On a terminal the bar is redrawn in place; into a pipe, only the end is told.
    live = Live(console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
    try:
        with live if console.is_terminal else contextlib.nullcontext():
            while _count_lines(calls_log) < stop and child.poll() is None:
                if time.monotonic() > deadline:
                    return -1
                with contextlib.suppress(ExecutionNotFound):  # not created yet
                    snap = await snapshot(execution_id, store)
                    loops = snap.status.progress
                    if loops and loops[0].done != done:
                        done = loops[0].done
                        if console.is_terminal:
                            live.update(bars.view(snap.progress), refresh=True)
                await asyncio.sleep(0.005)
    finally:
        await store.close()
    print(f"   {done}/{DOCUMENTS} checkpointed (read from the store)")
    return done


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `resumable` command in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "resumable", *args], capture_output=True, text=True, check=False
    )


def main(kill_after: int = 80) -> int:
    _quiet()
    # The embedded default store, so `resumable list` / `show` find the run after.
    workdir = Path(".resumable").resolve()
    workdir.mkdir(exist_ok=True)
    store = f"sqlite:///{workdir / 'state.db'}"
    execution_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    calls_log = str(workdir / f"{execution_id}-api-calls.log")
    print(f"resumable demo: {DOCUMENTS} documents through a slow API ({API_LATENCY * 1000:.0f} ms")
    print(f"per call), each one checkpointed in {workdir / 'state.db'}.")
    print()
    print(f"1. A child process starts execution {execution_id}:")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from resumable._demo import _child; _child({store!r}, "
            f"{execution_id!r}, {calls_log!r})",
        ],
    )
    if asyncio.run(_watch(store, execution_id, child, calls_log, kill_after)) < 0:
        child.kill()
        print("the child made no progress in 60 s", file=sys.stderr)
        return 1
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    killed_at = _count_lines(calls_log)
    print(f"2. We kill it with SIGKILL after {killed_at} API calls: no clean-up runs.")
    print("   What the store says now (`resumable show`, from yet another process):")
    shown = _cli("--store", store, "show", execution_id)
    for line in shown.stdout.splitlines():
        if line.startswith(("status", "progress", "  loop")):
            print("     " + line)
    print("3. A fresh process resumes it by id:")
    print(f"     $ resumable resume {execution_id}")
    before = asyncio.run(status(execution_id, store=store))
    resumed_at = before.progress[0].done if before.progress else 0
    resumed = _cli("--store", store, "resume", execution_id)
    if resumed.returncode != 0:
        print(resumed.stderr, file=sys.stderr)
        return 1
    for line in resumed.stdout.splitlines():
        print("     " + line)
    print(f"   It started at document {resumed_at}, the first unfinished one.")
    calls = collections.Counter(Path(calls_log).read_text(encoding="utf-8").split())
    twice = sorted(doc for doc, n in calls.items() if n > 1)
    print(f"4. The API was called {sum(calls.values())} times for {len(calls)} documents.")
    if len(calls) != DOCUMENTS:
        print(f"   ERROR: {DOCUMENTS - len(calls)} documents were never processed")
        return 1
    if len(twice) > 1:
        print(f"   ERROR: finished documents ran twice: {twice}")
        return 1
    if twice:
        print(f"   {twice[0]} ran twice: it was in flight at the kill (at-least-once).")
    print("   No document whose checkpoint was written ran again.")
    print()
    print("Look around (the run stays in .resumable/state.db):")
    print("   resumable list")
    print(f"   resumable show {execution_id}")
    return 0


def _count_lines(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
