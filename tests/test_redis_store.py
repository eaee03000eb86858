"""What RedisStore promises beyond the contract: group commit, one Cluster
slot per execution, lists without key scans, several event loops, and URLs.

Runs against the session's real server (tests/support/redis_server.py); a second
client (redis-py, synchronous) looks at the keys behind the store's back.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
import uuid
import warnings
from urllib.parse import urlsplit, urlunsplit

import msgpack
import pytest
import redis
from redis.crc import key_slot
from support.redis_server import fresh_prefix, with_prefix

from resumable.errors import LeaseLost
from resumable.stores import ExecutionUpdate, Lease, open_store
from resumable.stores import _redis_lua as lua
from resumable.stores.redis import RedisStore

TTL = 30.0


@pytest.fixture(name="make")
async def _make(redis_url):
    """Opens RedisStores on the session's server (fresh prefix unless given)."""
    opened: list[RedisStore] = []

    def make(**options) -> RedisStore:
        options.setdefault("prefix", fresh_prefix())
        store = RedisStore(redis_url, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture(name="peek")
def _peek(redis_url):
    """A plain synchronous client of the same server."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class TestGroupCommit:
    """Writes that arrive while one is in flight go out together, each
    caller learning its own outcome once its own data is acknowledged."""

    async def test_concurrent_writes_share_round_trips(self, make, make_record):
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", TTL)
        await asyncio.gather(*(store.write(lease, {f"k{i}": b"%d" % i}) for i in range(64)))
        assert await store.load("e1") == {f"k{i}": b"%d" % i for i in range(64)}
        assert store.stats.writes == 64
        # The first went out alone; the 63 that queued behind it, in one batch.
        assert store.stats.extra["write_batches"] == 1

    async def test_each_caller_returns_after_its_own_write_is_stored(self, make, make_record, peek):
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", TTL)
        key = f"{{{store.prefix}:e1}}:checkpoints"

        async def write_then_look(i: int) -> bytes | None:
            await store.write(lease, {f"k{i}": b"v%d" % i})
            return peek.hget(key, f"k{i}")  # another connection sees it at once

        seen = await asyncio.gather(*(write_then_look(i) for i in range(20)))
        assert seen == [b"v%d" % i for i in range(20)]

    async def test_fencing_failure_reaches_only_its_own_callers(self, make, make_record):
        store = make()
        stale = await store.create(make_record("e1"), "owner-a", 0.01)
        await asyncio.sleep(0.05)
        current = await store.acquire("e1", "owner-b", TTL)
        other = await store.create(make_record("e2"), "owner-a", TTL)
        writes = [
            store.write(current, {"first": b"1"}),  # in flight while the rest queue
            store.write(stale, {"stale": b"x"}),
            store.write(current, {"mine": b"2"}),
            store.write(other, {"other": b"3"}),
            store.write(stale, {"stale2": b"y"}, deletes=["mine"]),
        ]
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
        assert [type(o).__name__ for o in outcomes] == [
            "NoneType",
            "LeaseLost",
            "NoneType",
            "NoneType",
            "LeaseLost",
        ]
        assert outcomes[1].owner == "owner-b"
        assert await store.load("e1") == {"first": b"1", "mine": b"2"}
        assert await store.load("e2") == {"other": b"3"}
        assert store.stats.extra["write_pipelines"] == 1  # e1 and e2 in one round trip

    async def test_order_of_writes_to_one_key_is_kept(self, make, make_record):
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", TTL)
        writes = [store.write(lease, {"k": b"%d" % i}) for i in range(30)]
        writes.append(store.write(lease, {}, deletes=["k"]))
        writes.append(store.write(lease, {"last": b"!"}))
        await asyncio.gather(*writes)
        assert await store.load("e1") == {"last": b"!"}

    async def test_a_cancelled_waiter_does_not_stop_the_others(self, make, make_record):
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", TTL)
        first = asyncio.ensure_future(store.write(lease, {"a": b"1"}))
        await asyncio.sleep(0)  # in flight now
        doomed = asyncio.ensure_future(store.write(lease, {"b": b"2"}))
        kept = asyncio.ensure_future(store.write(lease, {"c": b"3"}))
        await asyncio.sleep(0)
        doomed.cancel()
        await asyncio.gather(first, kept)
        assert (await store.load("e1")).keys() == {"a", "c"}

    async def test_many_records_in_one_write(self, make, make_record):
        """More than Lua's stack holds at once (~8000 values) in one script call."""
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", TTL)
        puts = {f"k{i}": b"x" for i in range(6000)}
        await store.write(lease, puts)
        await store.write(lease, {}, deletes=list(puts)[:5000])
        assert len(await store.load("e1")) == 1000


class TestLayout:
    """One execution's keys share a hash tag; scripts survive a server that
    forgot them; the index is read page by page."""

    async def test_keys_of_an_execution_share_one_slot(self, make, make_record, peek):
        store = make()
        for execution_id in ("e1", "with}brace", "x{y}z"):
            lease = await store.create(make_record(execution_id), "owner-a", TTL)
            await store.write(lease, {"k": b"v"})
        keys = list(peek.scan_iter(match=f"*{store.prefix}*"))
        by_execution: dict[bytes, set[int]] = {}
        for key in keys:
            if key != f"{store.prefix}:index".encode():
                by_execution.setdefault(key.rsplit(b":", 1)[0], set()).add(key_slot(key))
        assert len(by_execution) == 3
        assert all(len(slots) == 1 for slots in by_execution.values())
        assert peek.zcard(f"{store.prefix}:index") == 3

    async def test_scripts_are_loaded_again_after_a_flush(self, make, make_record, peek):
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", TTL)
        _forget_scripts(peek)  # what a restarted server looks like
        await store.write(lease, {"a": b"1"})
        _forget_scripts(peek)
        await asyncio.gather(store.write(lease, {"b": b"2"}), store.write(lease, {"c": b"3"}))
        assert await store.load("e1") == {"a": b"1", "b": b"2", "c": b"3"}
        assert store.stats.extra["script_loads"] == 2
        assert store._link.functions  # Valkey has Functions: called by name

    async def test_a_server_without_functions_gets_scripts_by_sha(
        self, make, make_record, peek, redis_url
    ):
        """A user whose ACL denies FUNCTION (as a server older than Redis 7
        has none) is served by SCRIPT LOAD and EVALSHA, from the first call."""
        user, password = f"nofn-{uuid.uuid4().hex[:8]}", "pw-nofn"
        peek.acl_setuser(
            user,
            enabled=True,
            passwords=[f"+{password}"],
            keys=["*"],
            commands=["+@all", "-function"],
        )
        try:
            _forget_scripts(peek)
            parts = urlsplit(redis_url)
            url = urlunsplit(
                parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}")
            )
            store = RedisStore(url, prefix=fresh_prefix())
            try:
                lease = await store.create(make_record("e1"), "owner-a", TTL)
                await store.write(lease, {"a": b"1"})
                await store.write(lease, {"b": b"2"}, deletes=["a"])
                assert await store.load("e1") == {"b": b"2"}
                assert not store._link.functions
                assert peek.function_list(library="resumable_*") == []
                _forget_scripts(peek)  # and again after a restart
                await store.write(lease, {"c": b"3"})
                assert await store.load("e1") == {"b": b"2", "c": b"3"}
            finally:
                await store.close()
        finally:
            peek.acl_deluser(user)

    async def test_a_fold_deletes_runs_of_numbered_keys_as_spans(self, make, make_record, peek):
        """Folding a value's deltas deletes `name.0` .. `name.999`: sent as one
        span, not a thousand keys; odd keys around the run are deleted too."""
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", TTL)
        deltas = {f"#0+results.{i}": b"x" for i in range(2500)}
        await store.write(lease, {**deltas, "#0+results.007": b"y", "#0+r.5": b"z", "keep": b"k"})
        gone = [f"#0+results.{i}" for i in range(2400)] + ["#0+results.007", "#0+r.5"]
        gone += ["#0+results.2402", "#0+results.2404"]
        before = peek.info("stats")["total_net_input_bytes"]
        await store.write(lease, {"#0+chunk": b"c"}, deletes=gone)
        sent = peek.info("stats")["total_net_input_bytes"] - before
        left = {f"#0+results.{i}" for i in range(2400, 2500)} - {
            "#0+results.2402",
            "#0+results.2404",
        }
        assert set(await store.load("e1")) == left | {"keep", "#0+chunk"}
        assert sent < 500, sent  # the keys alone would be 40 KB

    async def test_list_filters_across_index_pages(self, make, make_record):
        store = make()
        for i in range(1100):
            record = make_record(f"e{i}", created_at=1000.0 + i, status="completed")
            lease = await store.create(record, "owner-a", TTL)
            if i % 300 == 7:
                await store.update(lease, ExecutionUpdate(status="failed"))
        failed = await store.list(status="failed")
        assert [r.id for r in failed] == ["e907", "e607", "e307", "e7"]
        assert [r.id for r in await store.list(limit=3)] == ["e1099", "e1098", "e1097"]

    async def test_list_skips_ids_left_in_the_index_without_a_record(self, make, make_record, peek):
        store = make()
        await store.create(make_record("e1", created_at=1.0), "owner-a", TTL)
        peek.zadd(f"{store.prefix}:index", {"ghost": 2.0})  # a crash between two commands
        assert [r.id for r in await store.list()] == ["e1"]
        assert [r.id for r in await store.list(status="running")] == ["e1"]

    async def test_a_retried_acquire_finds_its_own_lease(self, make, make_record, peek):
        """create and acquire carry a nonce: resending one whose reply was lost
        returns the same lease instead of "locked" (by ourselves)."""
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", 0.01)
        await asyncio.sleep(0.05)
        tag = f"{{{store.prefix}:e1}}"
        # The store calls Functions; this test sends the script itself, so it
        # loads it (it used to rely on another test having done so).
        assert peek.script_load(lua.SCRIPTS["acquire"].source) == lua.SCRIPTS["acquire"].sha
        first = peek.evalsha(lua.SCRIPTS["acquire"].sha, 1, tag, "owner-b", "30", "", "n1")
        again = peek.evalsha(lua.SCRIPTS["acquire"].sha, 1, tag, "owner-b", "30", "", "n1")
        other = peek.evalsha(lua.SCRIPTS["acquire"].sha, 1, tag, "owner-b", "30", "", "n2")
        assert first == again == [1, str(lease.token + 1).encode(), first[2]]
        assert other[0] == 0  # a different call of the same owner is locked out


class TestWire:
    """A checkpointed loop calls WRITE once per iteration, so its arguments
    are kept short (README "Benchmarks", bench_bytes): one key (the hash tag), the
    lease as token and owner digest, not the owner's text nor key names."""

    @pytest.mark.skipif(
        bool(os.environ.get("RESUMABLE_TEST_REDIS_URL")),
        reason="counts the server's input bytes: needs a server of its own",
    )
    async def test_a_write_costs_its_records_and_a_few_dozen_bytes(self, make, make_record, peek):
        store = make()
        owner = "a-rather-long-host-name.example.internal:123456:7890123 " * 4
        execution_id = "5f0c6b2a9d8e4f71a3b5c7d9e1f3a5b7"  # as long as a generated id
        lease = await store.create(make_record(execution_id), owner, TTL)
        await store.write(lease, {"warm": b"up"})  # connected, scripts loaded
        key, value = "#0+results.17", b"x" * 200
        info = b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n"  # the second INFO, counted too
        costs = []
        for _ in range(3):  # the least of three: nothing else talks to this server
            before = peek.info("stats")["total_net_input_bytes"]
            await store.write(lease, {key: value})
            costs.append(peek.info("stats")["total_net_input_bytes"] - before - len(info))
        tag = f"{{{store.prefix}:{execution_id}}}"
        # Five RESP bulk strings: FCALL, the function's name, 1, the tag,
        # then one MessagePack array: the fence (8 + 1 bytes), no deletes,
        # and the record. No owner, no key names but the record's own.
        packed = msgpack.packb([lua.fence_arg(lease), [], [], key, value], use_bin_type=False)
        assert len(packed) == 1 + 10 + 1 + 1 + 1 + len(key) + 3 + len(value)
        name = lua.SCRIPTS["write"].function
        fixed = len("*5\r\n$5\r\nFCALL\r\n") + len(f"${len(name)}\r\n{name}\r\n") + 7
        fixed += len(f"${len(tag)}\r\n{tag}\r\n") + len(f"${len(packed)}\r\n\r\n")
        assert min(costs) == fixed + len(packed)

    async def test_a_stale_token_is_refused_naming_the_owner(self, make, make_record):
        store = make()
        old, new = await _taken_over(store, make_record("e1"), "host-a:1:1", "host-b:2:2")
        await store.write(new, {"a": b"new"})
        for stale in (old, Lease("e1", "host-b:2:2", old.token, old.expires_at)):
            with pytest.raises(LeaseLost) as info:
                await store.write(stale, {"a": b"stale", "b": b"stale"}, deletes=["a"])
            assert info.value.owner == "host-b:2:2"
        assert await store.load("e1") == {"a": b"new"}

    async def test_the_current_token_of_another_owner_is_refused(self, make, make_record):
        """The token alone does not fence: an id deleted and created again
        starts at token 1, as does a forged lease."""
        store = make()
        lease = await store.create(make_record("e1"), "host-b:2:2", TTL)
        forged = Lease("e1", "host-a:1:1", lease.token, lease.expires_at)
        with pytest.raises(LeaseLost) as info:
            await store.write(forged, {"a": b"x"})
        assert info.value.owner == "host-b:2:2"
        for refused in (
            store.renew(forged, TTL),
            store.release(forged),
            store.update(forged, ExecutionUpdate(status="failed")),
        ):
            with pytest.raises(LeaseLost):
                await refused
        stored = await store.get("e1")
        assert stored is not None
        assert (stored.owner, stored.status, stored.lease_expires_at) == (
            "host-b:2:2",
            "running",
            lease.expires_at,
        )
        assert await store.load("e1") == {}

    async def test_owner_digests_that_look_like_digits_or_slashes(self, make, make_record):
        """The fence argument is digest then token digits: a digest made of
        digits or slashes must not be read as part of the token."""
        store = make()
        owners = [
            owner
            for owner in (f"host:{i}:0" for i in range(5000))
            if lua.owner_digest(owner)[-1:] in (b"/", b"1", b"9")
        ][:6]
        assert len(owners) == 6
        for n, owner in enumerate(owners):
            lease = await store.create(make_record(f"e{n}"), owner, TTL)
            await store.write(lease, {"a": b"1", "b": b"2", "c": b"3"})
            await store.write(lease, {"d": b"4"}, deletes=["a", "b"])
            assert await store.load(f"e{n}") == {"c": b"3", "d": b"4"}
            await store.renew(lease, TTL)
            await store.release(lease)
            await store.release(lease)

    async def test_queued_writes_merge_into_their_net_effect(self, make, make_record):
        store = make()
        lease = await store.create(make_record("e1"), "owner-a", TTL)
        rng = random.Random(7)
        expected: dict[str, bytes] = {}
        writes = []
        for i in range(200):
            puts = {f"k{rng.randrange(12)}": b"%d" % i for _ in range(rng.randrange(3))}
            deletes = [f"k{rng.randrange(12)}" for _ in range(rng.randrange(3))]
            for key in deletes:
                expected.pop(key, None)
            expected.update(puts)
            writes.append(store.write(lease, puts, deletes))
        await asyncio.gather(*writes)
        assert store.stats.extra["write_batches"] >= 1
        assert await store.load("e1") == expected

    async def test_data_of_the_earlier_layout_is_read_and_fenced(self, make, peek):
        """The stored layout did not change: an execution whose keys an
        earlier version wrote is acquired, written and loaded as before."""
        store = make()
        tag = f"{{{store.prefix}:old}}"
        now = time.time()
        peek.hset(
            f"{tag}:record",
            mapping={
                "id": "old",
                "function": "tests.jobs:digest",
                "name": "digest",
                "args": b"m\x90",
                "fingerprint": "fp",
                "location": "tests/jobs.py:1",
                "status": "running",
                "created_at": repr(now),
                "updated_at": repr(now),
                "owner": "gone:1:1",
                "lease_token": "4",
                "lease_expires_at": "0",
                "lease_nonce": "n",
                "attempts": "1",
                "cancel_requested": "0",
            },
        )
        peek.hset(f"{tag}:checkpoints", mapping={"#0": b"loop", "#0+results.0": b"r0"})
        lease = await store.acquire("old", "new:2:2", TTL)
        assert lease.token == 5
        await store.write(lease, {"#0+results.1": b"r1"}, deletes=["#0"])
        assert await store.load("old") == {"#0+results.0": b"r0", "#0+results.1": b"r1"}
        assert peek.hget(f"{tag}:checkpoints", "#0+results.1") == b"r1"
        with pytest.raises(LeaseLost) as info:
            await store.write(Lease("old", "gone:1:1", 4, 0.0), {"x": b"stale"})
        assert info.value.owner == "new:2:2"


async def _taken_over(store: RedisStore, record, first: str, second: str) -> tuple[Lease, Lease]:
    old = await store.create(record, first, 0.01)
    assert old is not None
    await asyncio.sleep(0.05)
    return old, await store.acquire(record.id, second, TTL)


class TestEventLoops:
    """One store serves successive event loops (asyncio.run called again)."""

    def test_survives_asyncio_run_twice_and_closes_its_connections(self, redis_url, make_record):
        store = RedisStore(redis_url, prefix=fresh_prefix())

        async def first() -> None:
            lease = await store.create(make_record("e1"), "owner-a", TTL)
            assert lease is not None
            await store.write(lease, {"a": b"1"})

        async def second() -> dict[str, bytes]:
            return await store.load("e1")

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an unclosed connection would warn
            asyncio.run(first())
            assert store._link._current is None  # closed when its loop shut down
            assert asyncio.run(second()) == {"a": b"1"}
            asyncio.run(store.close())
            gc.collect()

    async def test_closed_store_refuses_work(self, make):
        store = make()
        await store.close()
        with pytest.raises(Exception, match="the store was closed"):
            await store.get("e1")


class TestURL:
    """Store URLs: options, prefixes, redaction, and eager validation."""

    async def test_open_store_reads_the_prefix_and_options(self, redis_url):
        url = with_prefix(redis_url, "myapp", unavailable_after=2.5, max_record_bytes=1000)
        store = open_store(url)
        assert isinstance(store, RedisStore)
        assert (store.prefix, store.unavailable_after, store.max_record_bytes) == (
            "myapp",
            2.5,
            1000,
        )
        assert store.url == url
        await store.close()

    def test_password_is_redacted(self):
        store = RedisStore("redis://:hunter2@localhost:1/0?prefix=p")
        assert "hunter2" not in store.url + repr(store)
        assert store.url == "redis://:***@localhost:1/0?prefix=p"

    @pytest.mark.parametrize(
        ("url", "options", "message"),
        [
            ("redis://:hunter2@h/0?bogus=1", {}, "bogus"),
            ("redis://:hunter2@h/0?unavailable_after=soon", {}, "not a number"),
            ("redis://:hunter2@h/0?prefix=a", {"prefix": "b"}, "disagree"),
            ("redis://:hunter2@h/0", {"prefix": "a{b"}, "braces"),
            ("redis://:hunter2@h/0", {"unavailable_after": 0}, "unavailable_after"),
            ("memcached://:hunter2@h/0", {}, "redis://"),
        ],
    )
    def test_bad_options_are_refused_at_once(self, url, options, message):
        with pytest.raises(ValueError, match=message) as info:
            RedisStore(url, **options)
        assert "hunter2" not in str(info.value)

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("unavailable_after=soon", "unavailable_after='soon' is not a number"),
            ("max_record_bytes=x", "max_record_bytes='x' is not a number"),
            ("max_record_bytes=0", "max_record_bytes=0: expected a positive size"),
            ("prefix=", "prefix='': expected a non-empty name"),
            ("bogus=1", "RedisStore's own options are prefix"),
        ],
    )
    def test_open_store_refuses_bad_options(self, query, message):
        """The same checks through open_store (the registry's path)."""
        with pytest.raises(ValueError, match=message) as info:
            open_store(f"redis://:hunter2@localhost:1/0?{query}")
        assert "hunter2" not in str(info.value)

    async def test_a_stale_lease_message_names_the_new_owner(self, make, make_record):
        store = make()
        old = await store.create(make_record("e1"), "owner a:1:2", 0.01)
        await asyncio.sleep(0.05)
        await store.acquire("e1", "new owner:7:8", TTL)
        with pytest.raises(LeaseLost) as info:
            await store.renew(old, TTL)
        assert info.value.owner == "new owner:7:8"
        assert "new owner pid 7" in str(info.value)


def _forget_scripts(peek) -> None:
    """What a server restarted without persistence has: no scripts, no
    functions."""
    peek.script_flush()
    peek.function_flush()
