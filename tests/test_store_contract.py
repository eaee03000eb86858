"""The Store contract (stores/base.py), run against every store in conftest.STORES.

A store ships only if it passes all of this. Lease expiry is real time: a
lease of EXPIRING seconds is past after `await expire()`.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from resumable.errors import (
    CheckpointError,
    ExecutionLocked,
    ExecutionNotFound,
    LeaseLost,
    RecordTooLarge,
)
from resumable.stores import ExecutionUpdate, Lease, Store
from resumable.stores.base import ExecutionRecord

TTL = 30.0
EXPIRING = 0.02


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


class TestShape:
    """Every store has the protocol's attributes and methods."""

    async def test_is_a_store(self, store):
        assert isinstance(store, Store)
        assert "://" in store.url
        assert store.stats.writes == 0


class TestCreate:
    """create inserts a record and takes its lease in one step, once per id."""

    async def test_returns_the_first_lease(self, store, make_record):
        before = time.time()
        lease = await created(store, make_record("e1"))
        assert (lease.execution_id, lease.owner, lease.token) == ("e1", "owner-a", 1)
        assert before + TTL <= lease.expires_at <= time.time() + TTL

    async def test_stores_the_record_with_its_lease(self, store, make_record):
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

    async def test_fills_in_a_missing_created_at(self, store, make_record):
        before = time.time()
        await created(store, make_record("e1", created_at=0.0))
        stored = await store.get("e1")
        assert stored is not None
        assert before <= stored.created_at <= time.time()

    async def test_duplicate_id_returns_none_and_changes_nothing(self, store, make_record):
        lease = await created(store, make_record("e1", name="first"))
        await store.write(lease, {"k": b"v"})
        before = await store.get("e1")
        again = await store.create(make_record("e1", name="second"), "owner-b", TTL)
        assert again is None
        assert await store.get("e1") == before
        assert await store.load("e1") == {"k": b"v"}
        await store.write(lease, {"k": b"still mine"})  # the first lease still holds

    async def test_parent_id_round_trips(self, store, make_record):
        await created(store, make_record("top"))
        await created(store, make_record("top/3", parent_id="top"))
        await created(store, make_record("été/0.7.1", parent_id="été"))
        assert (await store.get("top")).parent_id is None
        assert (await store.get("top/3")).parent_id == "top"
        assert (await store.get("été/0.7.1")).parent_id == "été"
        by_id = {record.id: record.parent_id for record in await store.list()}
        assert by_id == {"top": None, "top/3": "top", "été/0.7.1": "été"}

    async def test_new_execution_has_no_checkpoints(self, store, make_record):
        await created(store, make_record("e1"))
        assert await store.load("e1") == {}


class TestGet:
    """get returns the record, or None for an unknown id."""

    async def test_unknown_id(self, store):
        assert await store.get("nope") is None


class TestAcquire:
    """acquire takes a free, expired or stolen lease and bumps the token."""

    async def test_unknown_id_raises_not_found(self, store):
        with pytest.raises(ExecutionNotFound) as info:
            await store.acquire("nope", "owner-a", TTL)
        assert info.value.execution_id == "nope"

    async def test_live_lease_raises_locked_naming_the_owner(self, store, make_record):
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

    async def test_expired_lease_is_taken_with_the_next_token(self, store, make_record):
        old, new = await taken_over(store, make_record("e1"))
        assert (new.owner, new.token) == ("owner-b", old.token + 1)
        stored = await store.get("e1")
        assert stored is not None
        assert (stored.owner, stored.lease_token) == ("owner-b", new.token)
        assert stored.lease_expires_at == new.expires_at

    async def test_released_lease_is_free_at_once(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.release(lease)
        again = await store.acquire("e1", "owner-b", TTL)
        assert again.token == lease.token + 1

    async def test_every_acquisition_increments_the_token(self, store, make_record):
        lease = await created(store, make_record("e1"))
        tokens = [lease.token]
        for _ in range(3):
            await store.release(lease)
            lease = await store.acquire("e1", "owner-a", TTL)
            tokens.append(lease.token)
        assert tokens == [1, 2, 3, 4]

    async def test_steal_token_equal_to_the_current_one_takes_a_live_lease(
        self, store, make_record
    ):
        lease = await created(store, make_record("e1"))
        stolen = await store.acquire("e1", "owner-b", TTL, steal_token=lease.token)
        assert (stolen.owner, stolen.token) == ("owner-b", lease.token + 1)
        with pytest.raises(LeaseLost):
            await store.write(lease, {"k": b"old owner"})

    async def test_stale_steal_token_does_not(self, store, make_record):
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

    async def test_renew_extends_the_lease(self, store, make_record):
        lease = await store.create(make_record("e1"), "owner-a", 1.0)
        assert lease is not None
        renewed = await store.renew(lease, TTL)
        assert (renewed.token, renewed.owner) == (lease.token, lease.owner)
        assert renewed.expires_at > lease.expires_at
        stored = await store.get("e1")
        assert stored is not None
        assert stored.lease_expires_at == renewed.expires_at

    async def test_renew_after_expiry_without_takeover_succeeds(self, store, make_record):
        lease = await store.create(make_record("e1"), "owner-a", EXPIRING)
        assert lease is not None
        await expire()
        renewed = await store.renew(lease, TTL)
        with pytest.raises(ExecutionLocked):
            await store.acquire("e1", "owner-b", TTL)
        await store.write(renewed, {"k": b"v"})

    async def test_renew_of_a_stale_lease_raises_lease_lost(self, store, make_record):
        old, new = await taken_over(store, make_record("e1"))
        with pytest.raises(LeaseLost) as info:
            await store.renew(old, TTL)
        assert info.value.owner == "owner-b"
        stored = await store.get("e1")
        assert stored is not None
        assert stored.lease_expires_at == new.expires_at

    async def test_release_frees_the_lease(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.release(lease)
        stored = await store.get("e1")
        assert stored is not None
        assert stored.owner is None
        assert stored.lease_token == lease.token

    async def test_release_is_idempotent(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.release(lease)
        await store.release(lease)
        stored = await store.get("e1")
        assert stored is not None
        assert stored.owner is None

    async def test_a_released_lease_can_no_longer_write(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.release(lease)
        with pytest.raises(LeaseLost):
            await store.write(lease, {"k": b"v"})
        with pytest.raises(LeaseLost):
            await store.update(lease, ExecutionUpdate(status="failed"))
        assert await store.load("e1") == {}

    async def test_release_of_a_stale_lease_raises_and_keeps_the_new_owner(
        self, store, make_record
    ):
        old, new = await taken_over(store, make_record("e1"))
        with pytest.raises(LeaseLost):
            await store.release(old)
        stored = await store.get("e1")
        assert stored is not None
        assert (stored.owner, stored.lease_token) == ("owner-b", new.token)

    async def test_ttl_must_be_positive(self, store, make_record):
        with pytest.raises(ValueError, match="ttl"):
            await store.create(make_record("e1"), "owner-a", 0)
        assert await store.get("e1") is None


class TestWrite:
    """write applies puts and deletes atomically, fenced by the lease token."""

    async def test_puts_are_loaded_back(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1", "b": b"\x00\xff" * 100, "": b""})
        assert await store.load("e1") == {"a": b"1", "b": b"\x00\xff" * 100, "": b""}

    async def test_put_overwrites(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1"})
        await store.write(lease, {"a": b"2"})
        assert await store.load("e1") == {"a": b"2"}

    async def test_puts_and_deletes_in_one_write(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1", "b": b"2", "c": b"3"})
        await store.write(lease, {"d": b"4", "a": b"1b"}, deletes=["b", "c", "never-written"])
        assert await store.load("e1") == {"a": b"1b", "d": b"4"}

    async def test_a_key_both_deleted_and_put_ends_up_put(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1"})
        await store.write(lease, {"a": b"2"}, deletes={"a"})
        assert await store.load("e1") == {"a": b"2"}

    async def test_empty_write_is_allowed(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {})
        assert await store.load("e1") == {}

    async def test_stale_token_raises_lease_lost_and_changes_nothing(self, store, make_record):
        old, new = await taken_over(store, make_record("e1"))
        await store.write(new, {"a": b"new owner"})
        with pytest.raises(LeaseLost) as info:
            await store.write(old, {"a": b"old owner", "b": b"old"}, deletes=["a"])
        assert info.value.execution_id == "e1"
        assert info.value.owner == "owner-b"
        assert await store.load("e1") == {"a": b"new owner"}

    async def test_write_to_a_deleted_execution_raises_lease_lost(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.delete("e1")
        with pytest.raises(LeaseLost):
            await store.write(lease, {"a": b"1"})
        assert await store.load("e1") == {}

    async def test_executions_do_not_share_keys(self, store, make_record):
        one = await created(store, make_record("e1"))
        two = await created(store, make_record("e2"))
        await store.write(one, {"k": b"one"})
        await store.write(two, {"k": b"two"})
        await store.write(two, {}, deletes=["k"])
        assert await store.load("e1") == {"k": b"one"}
        assert await store.load("e2") == {}

    async def test_concurrent_writers_of_one_lease_all_land(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await asyncio.gather(*(store.write(lease, {f"k{i}": b"%d" % i}) for i in range(50)))
        assert await store.load("e1") == {f"k{i}": b"%d" % i for i in range(50)}


class TestOversize:
    """A record over max_record_bytes is refused, and nothing of its write lands."""

    async def test_oversize_put_refused_with_nothing_written(self, make_store, make_record):
        store = make_store(max_record_bytes=1000)
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"old", "gone": b"x"})
        with pytest.raises(RecordTooLarge, match="1,001 bytes") as info:
            await store.write(lease, {"a": b"new", "big": b"x" * 1001}, deletes=["gone"])
        assert isinstance(info.value, CheckpointError | ValueError)
        assert (info.value.key, info.value.size, info.value.limit) == ("big", 1001, 1000)
        message = str(info.value)
        assert "'big'" in message
        assert "'e1'" in message
        assert "1,000" in message
        assert await store.load("e1") == {"a": b"old", "gone": b"x"}
        assert store.stats.writes == 1

    async def test_a_record_at_the_limit_fits(self, make_store, make_record):
        store = make_store(max_record_bytes=1000)
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"edge": b"x" * 1000})
        assert await store.load("e1") == {"edge": b"x" * 1000}

    async def test_oversize_result_refused(self, make_store, make_record):
        store = make_store(max_record_bytes=1000)
        lease = await created(store, make_record("e1"))
        with pytest.raises(RecordTooLarge, match="'result'"):
            await store.update(lease, ExecutionUpdate(status="completed", result=b"x" * 1001))
        stored = await store.get("e1")
        assert stored is not None
        assert (stored.status, stored.result) == ("running", None)


class TestUpdate:
    """update changes the given fields under the fence and returns the record."""

    async def test_sets_given_fields_and_keeps_the_rest(self, store, make_record):
        record = make_record("e1", fingerprint="fp-old", attempts=1)
        lease = await created(store, record)
        before = await store.get("e1")
        assert before is not None
        change = ExecutionUpdate(
            status="failed",
            finished_at=1234.5,
            error=b"pickled error",
            error_text="Traceback ...",
            attempts=2,
        )
        updated = await store.update(lease, change)
        assert updated == await store.get("e1")
        assert updated.replace(updated_at=0.0) == before.replace(
            status="failed",
            finished_at=1234.5,
            error=b"pickled error",
            error_text="Traceback ...",
            attempts=2,
            updated_at=0.0,
        )
        assert updated.updated_at >= before.updated_at

    async def test_every_field(self, store, make_record):
        lease = await created(store, make_record("e1"))
        change = ExecutionUpdate(
            status="completed",
            fingerprint="fp-2",
            started_at=1.5,
            finished_at=2.5,
            result=b"result",
            error=b"error",
            error_text="text",
            attempts=7,
            cancel_requested=True,
        )
        updated = await store.update(lease, change)
        assert (
            updated.status,
            updated.fingerprint,
            updated.started_at,
            updated.finished_at,
            updated.result,
            updated.error,
            updated.error_text,
            updated.attempts,
            updated.cancel_requested,
        ) == ("completed", "fp-2", 1.5, 2.5, b"result", b"error", "text", 7, True)
        assert (updated.owner, updated.lease_token) == ("owner-a", lease.token)

    async def test_clear_checkpoints(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1", "b": b"2"})
        await store.update(lease, ExecutionUpdate(clear_checkpoints=True))
        assert await store.load("e1") == {}
        await store.write(lease, {"c": b"3"})
        assert await store.load("e1") == {"c": b"3"}

    async def test_replace_checkpoints_with_the_outcome(self, store, make_record):
        """Compaction at completion: the records become exactly the summary,
        in the transaction that stores the result."""
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1", "b": b"2", "c": b"3"})
        summary = {"a": b"summary", f"k{'x' * 300}": b"\x00" * 10}
        summary |= {f"many{i}": b"%d" % i for i in range(1200)}  # past Lua's unpack chunk
        update = ExecutionUpdate(status="completed", result=b"r", replace_checkpoints=summary)
        updated = await store.update(lease, update)
        assert (updated.status, updated.result) == ("completed", b"r")
        assert await store.load("e1") == summary
        await store.update(lease, ExecutionUpdate(replace_checkpoints={}))
        assert await store.load("e1") == {}

    async def test_args_are_replaced_with_the_checkpoints(self, store, make_record):
        """`migrate --sign`: the arguments and every record, in one update."""
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1"})
        update = ExecutionUpdate(args=b"signed args", replace_checkpoints={"a": b"signed 1"})
        updated = await store.update(lease, update)
        assert updated.args == b"signed args"
        found = await store.get("e1")
        assert found is not None and (found.args, found.status) == (b"signed args", "running")
        assert await store.load("e1") == {"a": b"signed 1"}

    async def test_replace_checkpoints_is_fenced(self, store, make_record):
        old, new = await taken_over(store, make_record("e1"))
        await store.write(new, {"a": b"1"})
        with pytest.raises(LeaseLost):
            await store.update(old, ExecutionUpdate(replace_checkpoints={"b": b"2"}))
        assert await store.load("e1") == {"a": b"1"}

    async def test_the_format_field_round_trips(self, store, make_record):
        await created(store, make_record("e1", format=2))
        await created(store, make_record("e0"))
        found, default = await store.get("e1"), await store.get("e0")
        assert found is not None and default is not None
        assert (found.format, default.format) == (2, 1)

    async def test_without_clear_checkpoints_they_stay(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1"})
        await store.update(lease, ExecutionUpdate(status="failed"))
        assert await store.load("e1") == {"a": b"1"}

    async def test_stale_token_raises_lease_lost_and_changes_nothing(self, store, make_record):
        old, new = await taken_over(store, make_record("e1"))
        await store.write(new, {"a": b"1"})
        before = await store.get("e1")
        with pytest.raises(LeaseLost):
            await store.update(
                old, ExecutionUpdate(status="completed", result=b"r", clear_checkpoints=True)
            )
        assert await store.get("e1") == before
        assert await store.load("e1") == {"a": b"1"}


class TestLoad:
    """load returns exactly the state after the last acknowledged write."""

    async def test_unknown_id_has_no_checkpoints(self, store):
        assert await store.load("nope") == {}

    async def test_matches_a_model_after_many_writes(self, store, make_record):
        lease = await created(store, make_record("e1"))
        model: dict[str, bytes] = {}
        for i in range(60):
            puts = {f"k{i % 7}": b"%d" % i, f"n{i}": b"x" * (i % 5)}
            deletes = [f"n{i - 3}", f"k{(i + 3) % 7}"] if i % 4 == 0 else []
            await store.write(lease, puts, deletes)
            for key in deletes:
                model.pop(key, None)
            model.update(puts)
        assert await store.load("e1") == model

    async def test_returns_a_copy(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"a": b"1"})
        loaded = await store.load("e1")
        loaded["b"] = b"2"
        assert await store.load("e1") == {"a": b"1"}


def header_rule(key: str) -> bool:
    """The rule of Store.load_headers, written out independently of the stores."""
    return not key.startswith("memo:") and "+" not in key and "=" not in key


class TestLoadHeaders:
    """load_headers returns the records of header (and loop location) keys:
    none of + = in the key, no memo: prefix; exactly as load has them."""

    KEYS = (
        "#0", "#0@", "#0+out.0", "#0+out.1", "#0+out.10", "#0=0", "#0=1", "#0=10",
        "#0[3]/#1", "#0[3]/#1@", "#0[3]/#1=2", "#0[3]/#1+acc.0", "#1", "#1=5", "#10",
        "#10=0", "#2", "memo:fetch:ab12", "memo:fetch:cd=+", "", "a=b", "x+", "zz", "ü", "ü=1",
    )  # fmt: skip

    async def test_unknown_id_has_none(self, store):
        assert await store.load_headers("nope") == {}

    async def test_only_header_keys(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {key: key.encode() * 3 for key in self.KEYS})
        found = await store.load_headers("e1")
        assert found == {key: key.encode() * 3 for key in self.KEYS if header_rule(key)}
        kept = {"#0", "#0@", "#0[3]/#1", "#0[3]/#1@", "#1", "#10", "#2", "", "zz", "ü"}
        assert set(found) == kept

    async def test_the_rule_is_the_record_formats(self, store, make_record):
        from resumable.runtime import wire

        lease = await created(store, make_record("e1"))
        await store.write(lease, dict.fromkeys(self.KEYS, b"v"))
        found = await store.load_headers("e1")
        for key in self.KEYS:
            kind = wire.parse_key(key).kind
            if kind in ("header", "location"):
                assert key in found, key
            elif kind in ("delta", "item", "memo"):
                assert key not in found, key

    async def test_headers_among_many_other_records(self, store, make_record):
        """Runs of items and deltas longer than any page or scan step."""
        lease = await created(store, make_record("e1"))
        puts = {f"#{p}": b"h%d" % p for p in range(0, 12, 2)}
        puts |= {f"#{p}@": b"at" for p in range(0, 12, 4)}
        for p in (0, 4, 10):
            puts |= {f"#{p}={i}": b"i" * (i % 300) for i in range(1500)}
            puts |= {f"#{p}+out.{i}": b"d" for i in range(700)}
        puts |= {f"memo:s:{i}": b"m" for i in range(600)}
        puts |= {f"#4[{i}]/#0": b"inner" for i in range(300)}
        await store.write(lease, puts)
        expected = {key: value for key, value in puts.items() if header_rule(key)}
        assert len(expected) == 6 + 3 + 300
        assert await store.load_headers("e1") == expected

    async def test_follows_writes_deletes_and_replacement(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"#0": b"1", "#0=0": b"r", "#1": b"x"})
        await store.write(lease, {"#0": b"2", "#0=1": b"r"}, deletes=["#1"])
        assert await store.load_headers("e1") == {"#0": b"2"}
        await store.update(lease, ExecutionUpdate(replace_checkpoints={"#0": b"sum", "#0=0": b""}))
        assert await store.load_headers("e1") == {"#0": b"sum"}
        await store.write(lease, {"#5": b"5"})
        assert await store.load_headers("e1") == {"#0": b"sum", "#5": b"5"}

    async def test_executions_do_not_share_keys(self, store, make_record):
        one = await created(store, make_record("e1"))
        two = await created(store, make_record("e2"))
        await store.write(one, {"#0": b"one", "#0=0": b"r"})
        await store.write(two, {"#1": b"two"})
        assert await store.load_headers("e1") == {"#0": b"one"}
        assert await store.load_headers("e2") == {"#1": b"two"}

    async def test_returns_a_copy_and_is_not_a_load(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.write(lease, {"#0": b"1"})
        found = await store.load_headers("e1")
        found["#9"] = b"2"
        assert await store.load_headers("e1") == {"#0": b"1"}
        assert store.stats.loads == 0


class TestList:
    """list returns records newest first, filtered, up to a limit."""

    async def fill(self, store, make_record):
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

    async def ids(self, store, **filters):
        return [record.id for record in await store.list(**filters)]

    async def test_newest_first(self, store, make_record):
        await self.fill(store, make_record)
        assert await self.ids(store) == ["newest", "new", "mid", "old"]

    async def test_filter_by_status(self, store, make_record):
        await self.fill(store, make_record)
        assert await self.ids(store, status="completed") == ["new", "old"]
        assert await self.ids(store, status="cancelled") == []

    async def test_filter_by_function(self, store, make_record):
        await self.fill(store, make_record)
        assert await self.ids(store, function="m:f") == ["newest", "old"]

    async def test_filters_combine(self, store, make_record):
        await self.fill(store, make_record)
        assert await self.ids(store, status="completed", function="m:g") == ["new"]

    async def test_filter_by_parent(self, store, make_record):
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

    async def test_limit(self, store, make_record):
        await self.fill(store, make_record)
        assert await self.ids(store, limit=2) == ["newest", "new"]
        assert await self.ids(store, limit=0) == []
        with pytest.raises(ValueError, match="limit"):
            await store.list(limit=-1)

    async def test_records_are_whole(self, store, make_record):
        await created(store, make_record("e1", args=b"args"))
        [record] = await store.list()
        assert record == await store.get("e1")

    async def test_status_follows_updates(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.update(lease, ExecutionUpdate(status="cancelled"))
        assert await self.ids(store, status="cancelled") == ["e1"]
        assert await self.ids(store, status="running") == []


class TestRequestCancel:
    """request_cancel sets the flag without a lease; False for unknown ids."""

    async def test_sets_the_flag_and_keeps_the_lease(self, store, make_record):
        lease = await created(store, make_record("e1"))
        assert await store.cancel_requested("e1") is False
        assert await store.request_cancel("e1") is True
        assert await store.cancel_requested("e1") is True
        stored = await store.get("e1")
        assert stored is not None
        assert stored.cancel_requested is True
        assert (stored.owner, stored.lease_token, stored.status) == ("owner-a", 1, "running")
        await store.write(lease, {"a": b"1"})  # the owner still owns it

    async def test_unknown_id(self, store):
        assert await store.request_cancel("nope") is False
        assert await store.cancel_requested("nope") is False
        assert await store.get("nope") is None

    async def test_owner_can_clear_it(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await store.request_cancel("e1")
        updated = await store.update(lease, ExecutionUpdate(cancel_requested=False))
        assert updated.cancel_requested is False
        assert await store.cancel_requested("e1") is False


class TestDelete:
    """delete removes the record and its checkpoints; the id can be used again."""

    async def test_removes_record_and_checkpoints(self, store, make_record):
        lease = await created(store, make_record("e1"))
        await created(store, make_record("e2"))
        await store.write(lease, {"a": b"1"})
        assert await store.delete("e1") is True
        assert await store.get("e1") is None
        assert await store.load("e1") == {}
        assert [r.id for r in await store.list()] == ["e2"]

    async def test_unknown_id(self, store):
        assert await store.delete("nope") is False

    async def test_id_can_be_created_again_empty(self, store, make_record):
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

    async def test_counts(self, store, make_record):
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

    async def test_refused_writes_are_not_counted(self, store, make_record):
        old, _ = await taken_over(store, make_record("e1"))
        with pytest.raises(LeaseLost):
            await store.write(old, {"a": b"1"})
        assert (store.stats.writes, store.stats.records_written, store.stats.bytes_written) == (
            0,
            0,
            0,
        )
