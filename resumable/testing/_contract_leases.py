"""The contract's lease tests: create, get, acquire, renew and release
(the rules of `resumable.stores.leases`)."""

from __future__ import annotations

import time

import pytest

from resumable.errors import ExecutionLocked, ExecutionNotFound, LeaseLost
from resumable.stores.base import ExecutionUpdate, Store
from resumable.testing._contract_support import (
    EXPIRING,
    TTL,
    MakeRecord,
    created,
    expire,
    taken_over,
)

__all__ = ["LeaseContract"]


class LeaseContract:
    """Who holds an execution, and for how long."""

    class TestShape:
        """Every store has the protocol's attributes and methods."""

        async def test_is_a_store(self, store: Store) -> None:
            assert isinstance(store, Store)
            assert "://" in store.url
            assert store.stats.writes == 0

    class TestCreate:
        """create inserts a record and takes its lease in one step, once per id."""

        async def test_returns_the_first_lease(self, store: Store, make_record: MakeRecord) -> None:
            before = time.time()
            lease = await created(store, make_record("e1"))
            assert (lease.execution_id, lease.owner, lease.token) == ("e1", "owner-a", 1)
            assert before + TTL <= lease.expires_at <= time.time() + TTL

        async def test_stores_the_record_with_its_lease(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            record = make_record("e1", args=b"\x00args\xff", status="running", attempts=2)
            lease = await created(store, record)
            stored = await store.get("e1")
            assert stored is not None
            assert stored.replace(updated_at=0.0) == record.replace(
                owner="owner-a",
                lease_token=lease.token,
                lease_expires_at=lease.expires_at,
                updated_at=0.0,
            )
            assert type(stored.args) is bytes
            assert stored.cancel_requested is False

        async def test_fills_in_a_missing_created_at(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            before = time.time()
            await created(store, make_record("e1", created_at=0.0))
            stored = await store.get("e1")
            assert stored is not None
            assert before <= stored.created_at <= time.time()

        async def test_duplicate_id_returns_none_and_changes_nothing(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1", name="first"))
            await store.write(lease, {"k": b"v"})
            before = await store.get("e1")
            again = await store.create(make_record("e1", name="second"), "owner-b", TTL)
            assert again is None
            assert await store.get("e1") == before
            assert await store.load("e1") == {"k": b"v"}
            await store.write(lease, {"k": b"still mine"})  # the first lease still holds

        async def test_parent_id_round_trips(self, store: Store, make_record: MakeRecord) -> None:
            await created(store, make_record("top"))
            await created(store, make_record("top/3", parent_id="top"))
            await created(store, make_record("été/0.7.1", parent_id="été"))
            for execution_id, parent_id in (("top", None), ("top/3", "top"), ("été/0.7.1", "été")):
                stored = await store.get(execution_id)
                assert stored is not None
                assert stored.parent_id == parent_id
            by_id = {record.id: record.parent_id for record in await store.list()}
            assert by_id == {"top": None, "top/3": "top", "été/0.7.1": "été"}

        async def test_new_execution_has_no_checkpoints(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            await created(store, make_record("e1"))
            assert await store.load("e1") == {}

    class TestGet:
        """get returns the record, or None for an unknown id."""

        async def test_unknown_id(self, store: Store) -> None:
            assert await store.get("nope") is None

    class TestAcquire:
        """acquire takes a free, expired or stolen lease and bumps the token."""

        async def test_unknown_id_raises_not_found(self, store: Store) -> None:
            with pytest.raises(ExecutionNotFound) as info:
                await store.acquire("nope", "owner-a", TTL)
            assert info.value.execution_id == "nope"

        async def test_live_lease_raises_locked_naming_the_owner(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            await created(store, make_record("e1"), owner="owner-a")
            with pytest.raises(ExecutionLocked) as info:
                await store.acquire("e1", "owner-b", TTL)
            assert not isinstance(info.value, LeaseLost)
            assert info.value.owner == "owner-a"
            assert "owner-a" in str(info.value)
            assert 0 < info.value.expires_in <= TTL
            stored = await store.get("e1")
            assert stored is not None
            assert (stored.owner, stored.lease_token) == ("owner-a", 1)

        async def test_expired_lease_is_taken_with_the_next_token(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            old, new = await taken_over(store, make_record("e1"))
            assert (new.owner, new.token) == ("owner-b", old.token + 1)
            stored = await store.get("e1")
            assert stored is not None
            assert (stored.owner, stored.lease_token) == ("owner-b", new.token)
            assert stored.lease_expires_at == new.expires_at

        async def test_released_lease_is_free_at_once(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.release(lease)
            again = await store.acquire("e1", "owner-b", TTL)
            assert again.token == lease.token + 1

        async def test_every_acquisition_increments_the_token(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            tokens = [lease.token]
            for _ in range(3):
                await store.release(lease)
                lease = await store.acquire("e1", "owner-a", TTL)
                tokens.append(lease.token)
            assert tokens == [1, 2, 3, 4]

        async def test_steal_token_equal_to_the_current_one_takes_a_live_lease(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            stolen = await store.acquire("e1", "owner-b", TTL, steal_token=lease.token)
            assert (stolen.owner, stolen.token) == ("owner-b", lease.token + 1)
            with pytest.raises(LeaseLost):
                await store.write(lease, {"k": b"old owner"})

        async def test_stale_steal_token_does_not(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            stolen = await store.acquire("e1", "owner-b", TTL, steal_token=lease.token)
            # A second thief who read the record before the first theft loses.
            with pytest.raises(ExecutionLocked) as info:
                await store.acquire("e1", "owner-c", TTL, steal_token=lease.token)
            assert info.value.owner == "owner-b"
            stored = await store.get("e1")
            assert stored is not None
            assert stored.lease_token == stolen.token

    class TestRenewAndRelease:
        """renew extends a current lease; release frees it; both are fenced."""

        async def test_renew_extends_the_lease(self, store: Store, make_record: MakeRecord) -> None:
            lease = await store.create(make_record("e1"), "owner-a", 1.0)
            assert lease is not None
            renewed = await store.renew(lease, TTL)
            assert (renewed.token, renewed.owner) == (lease.token, lease.owner)
            assert renewed.expires_at > lease.expires_at
            stored = await store.get("e1")
            assert stored is not None
            assert stored.lease_expires_at == renewed.expires_at

        async def test_renew_after_expiry_without_takeover_succeeds(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await store.create(make_record("e1"), "owner-a", EXPIRING)
            assert lease is not None
            await expire()
            renewed = await store.renew(lease, TTL)
            with pytest.raises(ExecutionLocked):
                await store.acquire("e1", "owner-b", TTL)
            await store.write(renewed, {"k": b"v"})

        async def test_renew_of_a_stale_lease_raises_lease_lost(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            old, new = await taken_over(store, make_record("e1"))
            with pytest.raises(LeaseLost) as info:
                await store.renew(old, TTL)
            assert info.value.owner == "owner-b"
            stored = await store.get("e1")
            assert stored is not None
            assert stored.lease_expires_at == new.expires_at

        async def test_release_frees_the_lease(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.release(lease)
            stored = await store.get("e1")
            assert stored is not None
            assert stored.owner is None
            assert stored.lease_token == lease.token

        async def test_release_is_idempotent(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.release(lease)
            await store.release(lease)
            stored = await store.get("e1")
            assert stored is not None
            assert stored.owner is None

        async def test_a_released_lease_can_no_longer_write(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.release(lease)
            with pytest.raises(LeaseLost):
                await store.write(lease, {"k": b"v"})
            with pytest.raises(LeaseLost):
                await store.update(lease, ExecutionUpdate(status="failed"))
            assert await store.load("e1") == {}

        async def test_release_of_a_stale_lease_raises_and_keeps_the_new_owner(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            old, new = await taken_over(store, make_record("e1"))
            with pytest.raises(LeaseLost):
                await store.release(old)
            stored = await store.get("e1")
            assert stored is not None
            assert (stored.owner, stored.lease_token) == ("owner-b", new.token)

        async def test_ttl_must_be_positive(self, store: Store, make_record: MakeRecord) -> None:
            with pytest.raises(ValueError, match="ttl"):
                await store.create(make_record("e1"), "owner-a", 0)
            assert await store.get("e1") is None
