"""Faults for tests: the n-th checkpoint write dies, simulated or for real.

Two ways to die before a checkpoint write, both leaving the store exactly as
a killed process would:

* In process: `crash_plan` (set by `resumable.testing.crash_after`) raises
  `SimulatedCrash`, which derives from BaseException so that user code's
  `except Exception` cannot swallow it, and the engine records nothing when
  it passes.
* For real, in a subprocess: the environment, read ONCE when this module is
  imported (a test sets it on the child process it starts):

  - ``RESUMABLE_FAULT_SIGKILL_BEFORE_WRITE=N``: the process sends itself
    SIGKILL right before its checkpoint write number N (1-based, counting
    every `ExecutionContext.write` of the process, whatever execution, loop,
    fan-out or step it is for).
  - ``RESUMABLE_FAULT_COUNT_WRITES=PATH``: one line ``write N`` is appended
    to PATH before each write goes to the store (so an uninterrupted run
    tells how many writes it made, and, when PATH is also the program's own
    log, which of its side effects came before which write). Each line is
    one unbuffered ``write(2)`` on an ``O_APPEND`` descriptor: a SIGKILL
    loses none, and lines of several processes never interleave mid-line.

`before_write` is on the per-iteration path. With neither variable set it is
the bare simulated-crash check (one ContextVar read), exactly as before; the
environment is never read again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resumable.stores.base import Lease

SIGKILL_BEFORE_WRITE = "RESUMABLE_FAULT_SIGKILL_BEFORE_WRITE"
COUNT_WRITES = "RESUMABLE_FAULT_COUNT_WRITES"


class SimulatedCrash(BaseException):
    """The process 'died' before checkpoint write number `at` (1-based)."""

    def __init__(self, at: int) -> None:
        super().__init__(f"simulated crash before checkpoint write #{at}")
        self.at = at
        self.lease: Lease | None = None  # the dead owner's lease, for the test to expire


@dataclass(slots=True)
class CrashPlan:
    after: int  # checkpoint writes allowed before the crash
    seen: int = 0


crash_plan: ContextVar[CrashPlan | None] = ContextVar("resumable_crash_plan", default=None)


def _simulated_crash() -> None:
    plan = crash_plan.get()
    if plan is None:
        return
    plan.seen += 1
    if plan.seen > plan.after:
        raise SimulatedCrash(plan.seen)


def _kill_point(environ: Mapping[str, str]) -> int | None:
    """N of RESUMABLE_FAULT_SIGKILL_BEFORE_WRITE, or None when unset/empty.
    A value that is not an int >= 1 is refused at import: a fault test that
    silently never fires would pass for the wrong reason."""
    raw = environ.get(SIGKILL_BEFORE_WRITE, "").strip()
    if not raw:
        return None
    try:
        point = int(raw)
    except ValueError:
        point = 0
    if point < 1:
        raise ValueError(
            f"{SIGKILL_BEFORE_WRITE}={raw!r}: expected the 1-based number of the "
            "checkpoint write to die before (an int >= 1)"
        )
    return point


@dataclass(slots=True)
class _ProcessFaults:
    """The environment's faults, for this process's writes."""

    kill_at: int | None
    count_path: str | None
    writes: int = 0
    _fd: int | None = None

    def before_write(self) -> None:
        _simulated_crash()  # an in-process plan still applies, and fires first
        self.writes += 1
        if self.writes == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.count_path is not None:
            if self._fd is None:
                self._fd = os.open(self.count_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(self._fd, f"write {self.writes}\n".encode())


def _from_environment() -> _ProcessFaults | None:
    kill_at = _kill_point(os.environ)
    count_path = os.environ.get(COUNT_WRITES) or None
    if kill_at is None and count_path is None:
        return None
    return _ProcessFaults(kill_at, count_path)


process_faults = _from_environment()

# Called by ExecutionContext.write before every checkpoint write. Chosen once,
# here: without fault variables it is the bare simulated-crash check.
before_write = _simulated_crash if process_faults is None else process_faults.before_write
