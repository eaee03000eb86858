"""Real processes for the carry corpus (tests/test_corpus.py): run a program,
kill it with SIGKILL right before checkpoint write N, resume it fresh, and
read the side-effect log.

Every process gets its own PYTHONHASHSEED (as real processes do), the carry
audit (RESUMABLE_AUDIT_CARRY=1), and no fault variables unless asked. The
killed run and the uninterrupted run also count their checkpoint writes into
the program's own log (RESUMABLE_FAULT_COUNT_WRITES), so the log shows which
iterations ran before which write.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from resumable.runtime.faults import COUNT_WRITES, SIGKILL_BEFORE_WRITE

TESTS = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0

RESUME_SNIPPET = """\
import asyncio, json, sys
import resumable
from support.run_program import describe
execution_id, store, outcome = sys.argv[1:]
try:
    result = asyncio.run(resumable.resume(execution_id, store=store))
except BaseException as exc:
    with open(outcome, "w", encoding="utf-8") as out:
        json.dump(describe(exc), out)
    raise
print(json.dumps(result))
"""

_MARKER = re.compile(r"^write (\d+)$")


@dataclass(frozen=True, slots=True)
class Run:
    """One finished process."""

    command: str  # what ran, for failure messages
    returncode: int
    stdout: str
    stderr: str
    outcome: dict[str, object] | None  # the exception it died of, if any

    @property
    def result_text(self) -> str | None:
        """The JSON the process printed last (its result), or None."""
        lines = self.stdout.strip().splitlines()
        return lines[-1] if self.returncode == 0 and lines else None

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.stderr.strip().splitlines()[-lines:])

    def explain(self) -> str:
        died = "SIGKILL" if self.returncode == -9 else f"exit code {self.returncode}"
        error = ""
        if self.outcome is not None:
            error = f"\nraised {self.outcome['mro'][0]}: {self.outcome['message']}"  # type: ignore[index]
        return f"{self.command}: {died}{error}\n--- stderr (tail) ---\n{self.tail()}"


# The suite's keys pass through: the per-user key's directory (never the
# real home directory) and the key that Redis tests run with.
_KEPT = ("RESUMABLE_KEY_DIR", "RESUMABLE_SECRET_KEY")


def environment(hash_seed: int, **faults: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k in _KEPT or not k.startswith(("RESUMABLE_", "PYTHONHASH"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env["PYTHONHASHSEED"] = str(hash_seed)
    env["RESUMABLE_AUDIT_CARRY"] = "1"
    env.update(faults)
    return env


def _run(command: list[str], label: str, env: dict[str, str], cwd: Path, outcome: Path) -> Run:
    outcome.unlink(missing_ok=True)
    process = subprocess.run(
        command,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    described = json.loads(outcome.read_text(encoding="utf-8")) if outcome.exists() else None
    return Run(label, process.returncode, process.stdout, process.stderr, described)


def start(
    reference: str,
    store: str,
    execution_id: str,
    log: Path,
    *,
    hash_seed: int,
    kill_before_write: int | None = None,
    count_writes: bool = True,
) -> Run:
    """Run the program at `reference` as a new execution in a new process."""
    faults = {COUNT_WRITES: str(log)} if count_writes else {}
    if kill_before_write is not None:
        faults[SIGKILL_BEFORE_WRITE] = str(kill_before_write)
    label = f"run of {reference}" + (
        f" killed before write {kill_before_write}" if kill_before_write is not None else ""
    )
    outcome = log.with_suffix(".outcome.json")
    command = [
        sys.executable,
        "-m",
        "support.run_program",
        reference,
        store,
        execution_id,
        str(log),
        str(outcome),
    ]
    return _run(command, label, environment(hash_seed, **faults), log.parent, outcome)


def resume(store: str, execution_id: str, log: Path, *, hash_seed: int) -> Run:
    """`resumable.resume(id)` in a new process that never imported the
    program's module: the function is found by its stored reference."""
    outcome = log.with_suffix(".resume-outcome.json")
    command = [sys.executable, "-c", RESUME_SNIPPET, execution_id, store, str(outcome)]
    return _run(command, f"resume of {execution_id}", environment(hash_seed), log.parent, outcome)


def kill_point(point: str, writes: int, seed: str) -> int:
    """The checkpoint write to die before (1-based), for a run of `writes`
    writes: `first` (before any checkpoint), `second` (right after the
    first), `middle`, `last` (the last iteration's, or the loop's closing,
    write), or `random` (drawn from `seed`)."""
    return {
        "first": 1,
        "second": min(2, writes),
        "middle": max(1, (writes + 1) // 2),
        "last": writes,
        "random": random.Random(seed).randint(1, max(1, writes)),
    }[point]


@dataclass(frozen=True, slots=True)
class Trace:
    """The side-effect log: iteration tags and checkpoint-write markers, in
    the order they happened."""

    entries: tuple[str | int, ...]  # a tag, or the number of a write

    @classmethod
    def read(cls, log: Path) -> Trace:
        try:
            lines = log.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        entries: list[str | int] = []
        for line in lines:
            marker = _MARKER.match(line)
            entries.append(int(marker.group(1)) if marker else line)
        return cls(tuple(entries))

    @property
    def tags(self) -> Counter[str]:
        return Counter(e for e in self.entries if isinstance(e, str))

    @property
    def writes(self) -> int:
        return sum(1 for e in self.entries if isinstance(e, int))

    def before_write(self, number: int) -> list[str]:
        """Tags recorded before write `number` was made (all of them if the
        log has no such write; none for number < 1)."""
        found: list[str] = []
        for entry in self.entries:
            if isinstance(entry, int) and entry == number:
                return found
            if isinstance(entry, str):
                found.append(entry)
        return found if number >= 1 else []


@dataclass(frozen=True, slots=True)
class Baseline:
    """An uninterrupted run of a program."""

    returncode: int
    result_text: str | None
    writes: int
    tags: dict[str, int] = field(default_factory=dict)
    failure: str = ""  # why the run did not give a result


def baseline(reference: str, store: str | None, directory: Path, *, hash_seed: int) -> Baseline:
    """Run `reference` uninterrupted once, counting its writes and effects
    (in a SQLite file of `directory` when `store` is None)."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "effects.log"
    store = store or f"sqlite:///{directory / 'state.db'}"
    run = start(reference, store, f"baseline-{directory.name}", log, hash_seed=hash_seed)
    trace = Trace.read(log)
    return Baseline(
        returncode=run.returncode,
        result_text=run.result_text,
        writes=trace.writes,
        tags=dict(trace.tags),
        failure="" if run.result_text is not None else run.explain(),
    )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` across the xdist workers of a session."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_baseline(
    reference: str, store: str | None, cache: Path, key: str, *, hash_seed: int
) -> Baseline:
    """`baseline(...)` once per key and session, whichever worker asks first."""
    stored = cache / f"{key}.json"
    with locked(cache / f"{key}.lock"):
        if stored.exists():
            return Baseline(**json.loads(stored.read_text(encoding="utf-8")))
        found = baseline(reference, store, cache / key, hash_seed=hash_seed)
        stored.write_text(json.dumps(asdict(found)), encoding="utf-8")
        return found


CLEAN_STDERR_FORBIDDEN = (
    "During handling of the above exception",
    "The above exception was the direct cause",
    "Exception ignored",
    "Task exception was never retrieved",
    "was never awaited",
    "Task was destroyed",
    "Unclosed",
)


def unclean_stderr(stderr: str, error_class: str) -> list[str]:
    """What is wrong with the stderr of a process that died of one clear
    `error_class` error (its full name, as Python prints it): more than one
    traceback, chained internals, warnings about tasks or coroutines, or
    anything after the error's message."""
    problems = []
    tracebacks = stderr.count("Traceback (most recent call last):")
    if tracebacks != 1:
        problems.append(f"{tracebacks} tracebacks instead of 1")
    problems += [f"contains {text!r}" for text in CLEAN_STDERR_FORBIDDEN if text in stderr]
    lines = stderr.rstrip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"{error_class}: ")]
    if not starts:
        problems.append(f"no line starts with {error_class + ': '!r}")
    elif any(line.startswith(("  File ", "Traceback")) for line in lines[starts[-1] :]):
        problems.append(f"more output after the {error_class}")
    return problems
