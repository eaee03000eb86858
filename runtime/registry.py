"""This process's executions: those it runs, the leases it holds, and the
@resumable functions it defined; and the one answer to "is the owner gone?".

Process-wide by nature (a lease is held by a process, not by a store
object), so there is one `REGISTRY`. The engine writes it; `status`,
`recover` and `cancel` read it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from resumable.runtime import identity

if TYPE_CHECKING:
    from resumable.runtime.engine import Run, Target


class Owned(Protocol):
    """What `is_orphan` reads: an ExecutionRecord or an ExecutionStatus."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def lease_expires_at(self) -> float: ...


@dataclass(eq=False, slots=True)
class Registry:
    # Executions this process is running now, by id.
    running: dict[str, Run] = field(default_factory=dict)
    # Executions whose lease this process holds, from acquiring it until its
    # run ends. A lease recorded for this process but not held here is left
    # over from a run of ours that died (StoreUnavailable, a simulated
    # crash): that owner is gone.
    held: set[str] = field(default_factory=set)
    # Every @resumable function defined in this process, by reference (the
    # latest definition wins, as when a notebook cell is run again). Lets a
    # process resume functions it defined locally, which no import could find.
    defined: dict[str, Target] = field(default_factory=dict)

    def cancel(self, execution_id: str) -> asyncio.Task[Any] | None:
        """Cancel a run of this process at its next await; None if not here."""
        found = self.running.get(execution_id)
        if found is None:
            return None
        found.context.cancel_requested = True
        found.task.cancel()
        return found.task

    def is_orphan(self, record: Owned, now: float | None = None) -> bool:
        """Running, but nobody runs it: its lease expired, its owner is a
        dead process of this host, or it is ours but no run here holds it.
        `resume` or `recover` can take it over now."""
        return (
            record.status == "running"
            and record.id not in self.running
            and not self.owner_lives(record, now)
        )

    def owner_lives(self, record: Owned, now: float | None = None) -> bool:
        """A live process holds the execution's lease: it has not run out,
        and `owner_gone` does not say otherwise."""
        return (
            record.owner is not None
            and record.lease_expires_at > (time.time() if now is None else now)
            and not self.owner_gone(record)
        )

    def owner_gone(self, record: Owned) -> bool:
        """The recorded owner no longer runs the execution, though its lease
        may not have run out: a dead process of this host, or this process
        with no run holding the lease."""
        if record.owner == identity.this_owner():
            return record.id not in self.held
        return identity.is_dead_local(record.owner)


REGISTRY = Registry()
