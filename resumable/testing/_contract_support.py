"""What the contract's test classes share: lease times, a record factory,
and the steps many tests begin with."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, Protocol

from resumable.stores.base import ExecutionRecord, Lease, Store

__all__ = ["EXPIRING", "MakeRecord", "TTL", "created", "expire", "make_record", "taken_over"]

TTL = 30.0
# A lease this short is past after `await expire()`: expiry is real time.
EXPIRING = 0.02

_ids = itertools.count()


class MakeRecord(Protocol):
    """**Protocol:** builds an `ExecutionRecord` (see `make_record`)."""

    def __call__(self, execution_id: str | None = None, **changes: Any) -> ExecutionRecord: ...


def make_record(execution_id: str | None = None, **changes: Any) -> ExecutionRecord:
    """A plausible new execution record; `changes` override any field."""
    now = time.time()
    record = ExecutionRecord(
        id=execution_id or f"exec-{next(_ids)}",
        function="tests.jobs:digest",
        name="digest",
        args=b"m\x92\x90\x80",
        fingerprint="fp-1",
        location="tests/jobs.py:10",
        created_at=now,
        updated_at=now,
    )
    return record.replace(**changes) if changes else record


async def expire() -> None:
    await asyncio.sleep(EXPIRING * 3)


async def created(store: Store, record: ExecutionRecord, owner: str = "owner-a") -> Lease:
    lease = await store.create(record, owner, TTL)
    assert lease is not None
    return lease


async def taken_over(store: Store, record: ExecutionRecord) -> tuple[Lease, Lease]:
    """A lease that expired and was then acquired by "owner-b": (old, new)."""
    old = await store.create(record, "owner-a", EXPIRING)
    assert old is not None
    await expire()
    new = await store.acquire(record.id, "owner-b", TTL)
    return old, new
