"""`await resumable.gc(...)` on a real SQLite file: what ended before the
cutoff goes, nothing running or leased ever does, and dry_run deletes nothing."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from jobs import carry, waiting
from test_cli import _seeded  # noqa: F401  (the fixture: three ended executions)

import resumable
from resumable.runtime import identity
from resumable.stores import SQLiteStore

ENDED = {"done-1", "failed-1", "cancelled-1"}


async def _ids(store: SQLiteStore) -> set[str]:
    return {record.id for record in await store.list(limit=100)}


class TestGc:
    """Deletes ended executions older than the cutoff, under their lease."""

    async def test_deletes_what_ended_before_the_cutoff(self, sqlite, seeded):
        report = await resumable.gc(older_than=0, store=sqlite)
        assert isinstance(report, resumable.GcReport)
        assert {r.id for r in report.deleted} == ENDED
        assert report.skipped == () and report.compacted == () and not report.dry_run
        assert report.store_url == sqlite.url
        assert await _ids(sqlite) == set()

    async def test_keeps_what_ended_after_the_cutoff(self, sqlite, seeded):
        report = await resumable.gc(older_than=datetime.timedelta(hours=1), store=sqlite)
        assert report.deleted == ()
        assert await _ids(sqlite) == ENDED

    async def test_dry_run_deletes_nothing(self, sqlite, seeded):
        report = await resumable.gc(older_than=0, dry_run=True, store=sqlite)
        assert report.dry_run
        assert {r.id for r in report.deleted} == ENDED
        assert await _ids(sqlite) == ENDED

    async def test_a_running_execution_is_never_deleted(self, sqlite):
        waiting.GATES["gc"] = asyncio.Event()
        run = await waiting.wait_for_gate.options(execution_id="live", store=sqlite).start("gc")
        await carry.numbers.options(execution_id="old", store=sqlite)(3)
        await asyncio.sleep(0.01)
        report = await resumable.gc(older_than=0, store=sqlite)
        assert [r.id for r in report.deleted] == ["old"]
        assert await _ids(sqlite) == {"live"}
        waiting.GATES["gc"].set()
        assert await run.result() == "opened"

    async def test_a_leased_ended_execution_is_skipped(self, sqlite, seeded):
        """Someone took the lease (a resume starting): gc leaves it alone."""
        lease = await sqlite.acquire("failed-1", identity.this_owner(), 30.0)
        try:
            report = await resumable.gc(older_than=0, store=sqlite)
        finally:
            await sqlite.release(lease)
        assert [r.id for r in report.skipped] == ["failed-1"]
        assert {r.id for r in report.deleted} == {"done-1", "cancelled-1"}
        assert await _ids(sqlite) == {"failed-1"}

    async def test_compact_keeps_failed_and_cancelled(self, sqlite, seeded):
        report = await resumable.gc(older_than=0, compact=True, store=sqlite)
        assert [r.id for r in report.deleted] == ["done-1"]
        assert {c.record.id for c in report.compacted} == {"failed-1", "cancelled-1"}
        assert all(c.records_removed >= 0 for c in report.compacted)
        assert await _ids(sqlite) == {"failed-1", "cancelled-1"}

    @pytest.mark.parametrize("bad", [-1, float("nan"), "7d", True])
    async def test_refuses_a_bad_older_than(self, sqlite, bad):
        with pytest.raises(ValueError, match="older_than="):
            await resumable.gc(older_than=bad, store=sqlite)
