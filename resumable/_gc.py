"""`await resumable.gc(older_than=...)`: delete executions that ended long ago.

An execution is deleted under its lease: taking the lease first means no
`resume` can run it while it goes, and a record that was resumed (and ended
again) between listing and deleting is looked at again and left alone. A
running execution is never a candidate: only completed, failed and
cancelled ones are, by the time they ended. A child goes with its parent,
never before it (see `_without_kept_parents`).

With `compact=True`, failed and cancelled executions stay (resumable) and
lose only the records no resume reads: those of finished iterations and
items, which releases before format 3 left behind.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass

from resumable import _config
from resumable.errors import ExecutionLocked, ExecutionNotFound
from resumable.runtime import identity, wire
from resumable.stores.base import EVERYTHING, ExecutionRecord, Lease, Store
from resumable.stores.statuses import FINISHED

__all__ = ["Compacted", "GcReport", "gc"]


_COMPACT_BATCH = 1000  # deletes per transaction
_GC_LEASE_TTL = 30.0  # seconds: ample for one execution's delete or compaction


@dataclass(frozen=True, slots=True)
class Compacted:
    """A failed or cancelled execution that was kept, minus `records_removed` records."""

    record: ExecutionRecord
    records_removed: int


@dataclass(frozen=True, slots=True)
class GcReport:
    """What `gc` did (or, with `dry_run`, would do), oldest execution first.

    `skipped` holds executions that another process resumed while gc ran:
    they were left as they were.
    """

    store_url: str
    cutoff: float  # Unix seconds: executions that ended before it
    dry_run: bool
    deleted: tuple[ExecutionRecord, ...]
    compacted: tuple[Compacted, ...]
    skipped: tuple[ExecutionRecord, ...]


async def gc(
    *,
    older_than: float | datetime.timedelta,
    dry_run: bool = False,
    compact: bool = False,
    store: Store | str | None = None,
) -> GcReport:
    """Delete the executions that ended more than `older_than` (seconds, or
    a timedelta) ago; with `dry_run`, only report what would go."""
    seconds = (
        older_than.total_seconds() if isinstance(older_than, datetime.timedelta) else older_than
    )
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not seconds >= 0:
        raise ValueError(
            f"older_than={older_than!r}: expected seconds (a number >= 0) or a timedelta, "
            "such as older_than=7 * 86400"
        )
    chosen = _config.resolve_store(store)
    cutoff = time.time() - seconds
    deleted: list[ExecutionRecord] = []
    compacted: list[Compacted] = []
    skipped: list[ExecutionRecord] = []
    for record in await _collect(chosen, cutoff):
        if compact and record.status in ("failed", "cancelled"):
            removed = await _compact(chosen, record, cutoff, dry_run)
            if removed is None:
                skipped.append(record)
            else:
                compacted.append(Compacted(record, removed))
        elif dry_run or await _delete(chosen, record, cutoff):
            deleted.append(record)
        else:
            skipped.append(record)
    return GcReport(
        store_url=chosen.url,
        cutoff=cutoff,
        dry_run=dry_run,
        deleted=tuple(deleted),
        compacted=tuple(compacted),
        skipped=tuple(skipped),
    )


def _ended_before(record: ExecutionRecord, cutoff: float) -> bool:
    ended = record.finished_at if record.finished_at is not None else record.updated_at
    return record.status in FINISHED and ended < cutoff


async def _collect(store: Store, cutoff: float) -> list[ExecutionRecord]:
    found: list[ExecutionRecord] = []
    for status in FINISHED:
        records = await store.list(status=status, limit=EVERYTHING)
        found.extend(r for r in records if _ended_before(r, cutoff))
    found = await _without_kept_parents(store, found)
    return sorted(found, key=lambda r: r.finished_at or r.updated_at)


async def _without_kept_parents(
    store: Store, found: list[ExecutionRecord]
) -> list[ExecutionRecord]:
    """A child execution goes with its parent, never before it: a parent
    that stays (running, or failed and resumable) would otherwise find its
    child gone on replay and run the child's work again."""
    candidates = {r.id for r in found}
    gone = {
        parent
        for parent in {r.parent_id for r in found} - candidates
        if parent is not None and await store.get(parent) is None
    }
    while True:
        ids = {r.id for r in found}
        kept = [r for r in found if r.parent_id is None or r.parent_id in ids | gone]
        if len(kept) == len(found):
            return kept
        found = kept


async def _take_ended(store: Store, record: ExecutionRecord, cutoff: float) -> Lease | None:
    """The lease of an execution that still ended before `cutoff`, or None:
    holding it means no `resume` runs it while gc changes it."""
    try:
        lease = await store.acquire(record.id, identity.this_owner(), _GC_LEASE_TTL)
    except (ExecutionLocked, ExecutionNotFound):
        return None
    again = await store.get(record.id)
    if again is not None and _ended_before(again, cutoff):
        return lease
    await store.release(lease)  # resumed and ended again meanwhile: leave it
    return None


async def _delete(store: Store, record: ExecutionRecord, cutoff: float) -> bool:
    """Delete one execution unless someone resumed it meanwhile."""
    lease = await _take_ended(store, record, cutoff)
    return lease is not None and await store.delete(record.id)  # the lease goes with it


async def _compact(
    store: Store, record: ExecutionRecord, cutoff: float, dry_run: bool
) -> int | None:
    """Delete the records of a failed or cancelled execution that no resume
    reads, under its lease; it stays resumable. The number of records
    removed, or None when someone resumed it meanwhile."""
    codec = _config.codec_for(store)
    if dry_run:
        return len(wire.finished_scope_keys(record.id, await store.load(record.id), codec))
    lease = await _take_ended(store, record, cutoff)
    if lease is None:
        return None
    try:
        dead = wire.finished_scope_keys(record.id, await store.load(record.id), codec)
        for start in range(0, len(dead), _COMPACT_BATCH):
            await store.write(lease, {}, dead[start : start + _COMPACT_BATCH])
        return len(dead)
    finally:
        await store.release(lease)
