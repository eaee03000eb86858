"""The contract's listing tests: list, request_cancel, delete and stats."""

from __future__ import annotations

from typing import Any

import pytest

from resumable.errors import LeaseLost
from resumable.stores.base import ExecutionUpdate, Store
from resumable.testing._contract_support import MakeRecord, created, taken_over

__all__ = ["ListingContract"]


class ListingContract:
    """Finding, cancelling, deleting and counting executions."""

    class TestList:
        """list returns records newest first, filtered, up to a limit."""

        async def fill(self, store: Store, make_record: MakeRecord) -> None:
            specs = [
                ("old", 100.0, "completed", "m:f"),
                ("mid", 200.0, "running", "m:g"),
                ("new", 300.0, "completed", "m:g"),
                ("newest", 400.0, "failed", "m:f"),
            ]
            for execution_id, created_at, status, function in specs:
                record = make_record(
                    execution_id, created_at=created_at, status=status, function=function
                )
                await created(store, record)

        async def ids(self, store: Store, **filters: Any) -> list[str]:
            return [record.id for record in await store.list(**filters)]

        async def test_newest_first(self, store: Store, make_record: MakeRecord) -> None:
            await self.fill(store, make_record)
            assert await self.ids(store) == ["newest", "new", "mid", "old"]

        async def test_filter_by_status(self, store: Store, make_record: MakeRecord) -> None:
            await self.fill(store, make_record)
            assert await self.ids(store, status="completed") == ["new", "old"]
            assert await self.ids(store, status="cancelled") == []

        async def test_filter_by_function(self, store: Store, make_record: MakeRecord) -> None:
            await self.fill(store, make_record)
            assert await self.ids(store, function="m:f") == ["newest", "old"]

        async def test_filters_combine(self, store: Store, make_record: MakeRecord) -> None:
            await self.fill(store, make_record)
            assert await self.ids(store, status="completed", function="m:g") == ["new"]

        async def test_filter_by_parent(self, store: Store, make_record: MakeRecord) -> None:
            await self.fill(store, make_record)
            for execution_id, created_at, parent, status in [
                ("mid/0", 210.0, "mid", "completed"),
                ("mid/1", 220.0, "mid", "running"),
                ("mid/1/0", 230.0, "mid/1", "running"),
                ("old/0", 110.0, "old", "completed"),
            ]:
                record = make_record(
                    execution_id, created_at=created_at, parent_id=parent, status=status
                )
                await created(store, record)
            assert await self.ids(store, parent_id="mid") == ["mid/1", "mid/0"]
            assert await self.ids(store, parent_id="mid/1") == ["mid/1/0"]
            assert await self.ids(store, parent_id="mid", status="running") == ["mid/1"]
            assert await self.ids(store, parent_id="new") == []
            assert await self.ids(store, parent_id="mid", limit=1) == ["mid/1"]
            assert len(await self.ids(store)) == 8  # no filter: parents and children

        async def test_limit(self, store: Store, make_record: MakeRecord) -> None:
            await self.fill(store, make_record)
            assert await self.ids(store, limit=2) == ["newest", "new"]
            assert await self.ids(store, limit=0) == []
            with pytest.raises(ValueError, match="limit"):
                await store.list(limit=-1)

        async def test_records_are_whole(self, store: Store, make_record: MakeRecord) -> None:
            await created(store, make_record("e1", args=b"args"))
            [record] = await store.list()
            assert record == await store.get("e1")

        async def test_status_follows_updates(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.update(lease, ExecutionUpdate(status="cancelled"))
            assert await self.ids(store, status="cancelled") == ["e1"]
            assert await self.ids(store, status="running") == []

    class TestRequestCancel:
        """request_cancel sets the flag without a lease; False for unknown ids."""

        async def test_sets_the_flag_and_keeps_the_lease(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            assert await store.cancel_requested("e1") is False
            assert await store.request_cancel("e1") is True
            assert await store.cancel_requested("e1") is True
            stored = await store.get("e1")
            assert stored is not None
            assert stored.cancel_requested is True
            assert (stored.owner, stored.lease_token, stored.status) == ("owner-a", 1, "running")
            await store.write(lease, {"a": b"1"})  # the owner still owns it

        async def test_unknown_id(self, store: Store) -> None:
            assert await store.request_cancel("nope") is False
            assert await store.cancel_requested("nope") is False
            assert await store.get("nope") is None

        async def test_owner_can_clear_it(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.request_cancel("e1")
            updated = await store.update(lease, ExecutionUpdate(cancel_requested=False))
            assert updated.cancel_requested is False
            assert await store.cancel_requested("e1") is False

    class TestDelete:
        """delete removes the record and its checkpoints; the id can be used again."""

        async def test_removes_record_and_checkpoints(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await created(store, make_record("e2"))
            await store.write(lease, {"a": b"1"})
            assert await store.delete("e1") is True
            assert await store.get("e1") is None
            assert await store.load("e1") == {}
            assert [r.id for r in await store.list()] == ["e2"]

        async def test_unknown_id(self, store: Store) -> None:
            assert await store.delete("nope") is False

        async def test_id_can_be_created_again_empty(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1"})
            await store.delete("e1")
            again = await created(store, make_record("e1"), owner="owner-b")
            assert again.token == 1
            assert await store.load("e1") == {}
            # The first life's lease has the same token number: its owner differs.
            with pytest.raises(LeaseLost):
                await store.write(lease, {"a": b"stale"})
            assert await store.load("e1") == {}

    class TestStats:
        """stats count acknowledged writes, records, bytes and loads."""

        async def test_counts(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"ab": b"123", "c": b""})
            await store.write(lease, {"d": b"4567"}, deletes=["ab"])
            await store.write(lease, {}, deletes=["c"])
            await store.load("e1")
            await store.load("e1")
            stats = store.stats
            assert (stats.writes, stats.records_written, stats.bytes_written, stats.loads) == (
                3,
                3,
                (2 + 3) + (1 + 0) + (1 + 4),
                2,
            )

        async def test_refused_writes_are_not_counted(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            old, _ = await taken_over(store, make_record("e1"))
            with pytest.raises(LeaseLost):
                await store.write(old, {"a": b"1"})
            assert (store.stats.writes, store.stats.records_written, store.stats.bytes_written) == (
                0,
                0,
                0,
            )
