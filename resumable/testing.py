"""Testing helpers for users of `resumable` (and for our own tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from resumable.runtime.faults import CrashPlan, SimulatedCrash, crash_plan

__all__ = ["SimulatedCrash", "crash_after"]


@contextmanager
def crash_after(n: int) -> Iterator[CrashPlan]:
    """Let `n` checkpoint writes happen, then make the next one raise
    `SimulatedCrash` (a BaseException that skips all clean-up, as SIGKILL
    would). Executions started inside the block inherit the plan."""
    if n < 0:
        raise ValueError(f"crash_after({n}): n must be >= 0")
    plan = CrashPlan(after=n)
    token = crash_plan.set(plan)
    try:
        yield plan
    finally:
        crash_plan.reset(token)
