"""Simulated crashes for tests: the n-th checkpoint write dies like SIGKILL.

`SimulatedCrash` derives from BaseException so that user code's
`except Exception` cannot swallow it, and the engine records nothing when it
passes: the store is left exactly as a killed process would leave it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resumable.stores.base import Lease


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


def before_write() -> None:
    plan = crash_plan.get()
    if plan is None:
        return
    plan.seen += 1
    if plan.seen > plan.after:
        raise SimulatedCrash(plan.seen)
