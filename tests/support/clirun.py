"""Run the `resumable` command, and jobs for it to look at, in real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import resumable
from resumable.errors import ExecutionNotFound
from resumable.stores import open_store
from support.crashing import TESTS, environment


def cli_env(*, tests_on_path: bool = True, **extra: str) -> dict[str, str]:
    env = environment() if tests_on_path else dict(os.environ)
    env.pop("RESUMABLE_STORE", None)
    env.pop("RESUMABLE_LOG_LEVEL", None)
    if not tests_on_path:
        env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def cli(
    *args: str,
    store: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """`python -m resumable [--store STORE] ARGS...`, output captured."""
    command = [sys.executable, "-m", "resumable"]
    if store is not None:
        command += ["--store", store]
    return subprocess.run(
        [*command, *args],
        env=env if env is not None else cli_env(),
        cwd=cwd or TESTS,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str, store: str | None = None) -> subprocess.Popen[str]:
    """`python -m resumable [--store STORE] ARGS...` in the background, its
    output piped (read it as it comes: `--follow` flushes every frame)."""
    command = [sys.executable, "-m", "resumable"]
    if store is not None:
        command += ["--store", store]
    return subprocess.Popen(
        [*command, *args],
        env=cli_env(),
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def paused(process: subprocess.Popen[str]) -> Iterator[None]:
    """The process stopped (SIGSTOP: alive, its lease held) during the block.

    For a job that another command is about to watch: that command's
    interpreter start-up (0.5 s, several seconds on a busy machine) must not
    use up the job it came to watch."""
    os.kill(process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


def start_job(
    store: str, execution_id: str, n: int, delay: float, *flags: str
) -> subprocess.Popen[str]:
    """`jobs.watched` in a process of its own (a loop, then an amap)."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.watched", store, execution_id, str(n), str(delay), *flags],
        env=cli_env(),
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_loop(store: str, execution_id: str, done: int, timeout: float = 30) -> None:
    """Until the execution's first loop has checkpointed `done` iterations."""

    async def progress() -> int:
        opened = open_store(store)  # not the process-wide cache: closed each time
        try:
            found = await resumable.status(execution_id, store=opened)
        except ExecutionNotFound:
            return -1
        finally:
            await opened.close()
        return found.progress[0].done if found.progress else 0

    deadline = time.monotonic() + timeout  # called from a thread by async tests
    while asyncio.run(progress()) < done:
        assert time.monotonic() < deadline, f"{execution_id} made no progress"
        time.sleep(0.02)


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL, as a crash: nothing of the job's runs after."""
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
