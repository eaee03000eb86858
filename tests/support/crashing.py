"""Real processes for crash tests: start a job, SIGKILL it, resume it fresh."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from resumable import status
from resumable.stores import Store, open_store

T = TypeVar("T")

TESTS = Path(__file__).resolve().parent.parent
RESUME_SNIPPET = (
    "import asyncio, json, sys, resumable\n"
    "print(json.dumps(asyncio.run(resumable.resume(sys.argv[1], store=sys.argv[2]))))\n"
)


def read_store(store_url: str, read: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store at `store_url` (not the process-wide cache), read, close."""

    async def go() -> T:
        store = open_store(store_url)
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(go())


def loop_done(store_url: str, execution_id: str) -> int:
    """Finished iterations of the execution's first loop, as its checkpoint says."""

    async def read(store: Store) -> int:
        found = await status(execution_id, store=store)
        return found.progress[0].done if found.progress else 0

    return read_store(store_url, read)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


def start(
    store: str, execution_id: str, job: str, n: int, log: Path, delay: float
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobs.child",
            store,
            execution_id,
            job,
            str(n),
            str(log),
            str(delay),
        ],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count(log: Path) -> Counter[str]:
    try:
        return Counter(log.read_text(encoding="utf-8").split())
    except FileNotFoundError:
        return Counter()


def kill_after_lines(
    process: subprocess.Popen[str], log: Path, lines: int, extra: float, *, patience: float = 30
) -> bool:
    """SIGKILL `process` once `log` has `lines` lines plus `extra` seconds.
    Returns False if the process ended by itself first. `patience`: seconds
    without reaching `lines` before the job counts as stuck."""
    deadline = time.monotonic() + patience
    while count(log).total() < lines:
        if process.poll() is not None:
            process.communicate()
            return False
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no progress: {process.communicate()}")
        time.sleep(0.001)
    time.sleep(extra)
    if process.poll() is not None:
        process.communicate()
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()  # reap it and close its pipes
    return True


def resume_fresh(store: str, execution_id: str, *, kill_after: float | None = None) -> object:
    """Resume in a new interpreter that has not imported the job's module:
    the function is found from its stored reference."""
    process = subprocess.Popen(
        [sys.executable, "-c", RESUME_SNIPPET, execution_id, store],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_after is not None:
        time.sleep(kill_after)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            return None
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])
