"""What SQLiteStore promises beyond the contract: a file that outlives processes.

Other processes are real subprocesses of this interpreter, and the crash test
kills one with SIGKILL in the middle of its writes.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import sqlite3
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from resumable.errors import LeaseLost, StoreUnavailable
from resumable.stores import ExecutionUpdate, SQLiteStore, open_store
from resumable.stores._sqlite_sql import SCHEMA_VERSION

TTL = 30.0


async def python(script: str, *args: str) -> asyncio.subprocess.Process:
    """Start `script` in a child interpreter, with pipes for its stdin and stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(proc: asyncio.subprocess.Process) -> str:
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def checkpoints_done(store: SQLiteStore, timeout: float = 30) -> None:
    """Until no background WAL checkpoint of `store` is running."""
    deadline = time.monotonic() + timeout
    while store._checkpoint_running:
        assert time.monotonic() < deadline, "a WAL checkpoint never finished"
        await asyncio.sleep(0.01)


@pytest.fixture(name="path")
def _path(tmp_path):
    return tmp_path / "nested" / "dir" / "state.db"


@pytest.fixture(name="sqlite")
async def _sqlite(path):
    store = SQLiteStore(path)
    yield store
    await store.close()


class TestFile:
    """The database is a real file, created with its directories, in WAL mode."""

    async def test_creates_parent_directories(self, sqlite, path):
        assert path.is_file()
        assert sqlite.url == f"sqlite:///{path}"

    async def test_url_reopens_the_same_file(self, sqlite, make_record):
        lease = await sqlite.create(make_record("e1"), "a", TTL)
        await sqlite.write(lease, {"k": b"v"})
        other = open_store(sqlite.url)
        try:
            assert isinstance(other, SQLiteStore)
            assert other.path == sqlite.path
            assert await other.load("e1") == {"k": b"v"}
        finally:
            await other.close()

    async def test_wal_mode(self, sqlite, path):
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    async def test_synchronous_normal_by_default(self, sqlite):
        assert sqlite._conn.execute("PRAGMA synchronous").fetchone()[0] == 1

    async def test_synchronous_full_from_the_url(self, path):
        store = open_store(f"sqlite:///{path}?synchronous=full")
        try:
            assert isinstance(store, SQLiteStore)
            assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
            assert store.url.endswith("?synchronous=full")
        finally:
            await store.close()

    async def test_garbage_file_is_unavailable(self, tmp_path):
        bad = tmp_path / "bad.db"
        bad.write_bytes(b"this is not a database" * 100)
        with pytest.raises(StoreUnavailable, match="opening the database"):
            SQLiteStore(bad)

    async def test_newer_schema_is_refused(self, path):
        await SQLiteStore(path).close()
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA user_version = 99")
        with pytest.raises(StoreUnavailable, match="upgrade resumable"):
            SQLiteStore(path)

    async def test_closed_store_is_unavailable(self, path, make_record):
        store = SQLiteStore(path)
        await store.close()
        with pytest.raises(StoreUnavailable, match="closed"):
            await store.get("e1")


class TestSchemaMigration:
    """A file of schema version 1 (before child executions) is migrated in
    place when opened, and everything in it keeps working.

    tests/data/sqlite-schema-v1.db was written by the version-1 SQLiteStore
    (commit 31d2c57) through its public methods: a completed, a failed and an
    orphaned running execution (lease expired, owner gone) with checkpoints.
    """

    V1 = Path(__file__).parent / "data" / "sqlite-schema-v1.db"

    @pytest.fixture(name="v1_path")
    def _v1_path(self, tmp_path):
        path = tmp_path / "state.db"
        shutil.copyfile(self.V1, path)
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
            columns = [row[1] for row in conn.execute("PRAGMA table_info(executions)")]
        assert "parent_id" not in columns
        return path

    async def test_opening_migrates_to_the_current_version(self, v1_path):
        await SQLiteStore(v1_path).close()
        with closing(sqlite3.connect(v1_path)) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
            columns = [row[1] for row in conn.execute("PRAGMA table_info(executions)")]
            indexes = [row[1] for row in conn.execute("PRAGMA index_list(executions)")]
            formats = {row[0] for row in conn.execute("SELECT format FROM executions")}
        assert "parent_id" in columns and "format" in columns
        assert formats == {1}  # stored before the record format was recorded
        assert "executions_parent_id" in indexes
        again = SQLiteStore(v1_path)  # a migrated file opens as it is
        await again.close()

    async def test_old_records_are_read_unchanged(self, v1_path):
        store = SQLiteStore(v1_path)
        try:
            done = await store.get("done-1")
            assert done is not None
            assert (done.status, done.result, done.parent_id, done.attempts) == (
                "completed",
                b"m\xa2ok",
                None,
                1,
            )
            assert done.args.startswith(b"m")
            assert await store.load("done-1") == {"#0": b"header-done", "#0+0": b"delta"}
            failed = await store.get("failed-1")
            assert failed is not None
            assert (failed.status, failed.error_text, failed.cancel_requested) == (
                "failed",
                "Traceback...\nValueError: boom\n",
                True,
            )
            assert [r.id for r in await store.list()] == ["orphan-1", "failed-1", "done-1"]
            assert [r.id for r in await store.list(status="running")] == ["orphan-1"]
        finally:
            await store.close()

    async def test_old_executions_go_on_and_new_children_join(self, v1_path, make_record):
        store = SQLiteStore(v1_path)
        try:
            orphan = await store.get("orphan-1")
            assert orphan is not None
            assert orphan.lease_expires_at < time.time()
            lease = await store.acquire("orphan-1", "me", TTL)  # its lease expired
            assert lease.token == orphan.lease_token + 1
            await store.write(lease, {"#0+2": b"delta-2"}, deletes=["#0+0"])
            assert await store.load("orphan-1") == {
                "#0": b"header-orphan",
                "#0+1": b"delta-1",
                "#0+2": b"delta-2",
            }
            child = make_record("orphan-1/1", parent_id="orphan-1")
            assert await store.create(child, "me", TTL) is not None
            await store.update(lease, ExecutionUpdate(status="completed", result=b"r"))
            assert [r.id for r in await store.list(parent_id="orphan-1")] == ["orphan-1/1"]
            assert (await store.get("orphan-1/1")).parent_id == "orphan-1"
        finally:
            await store.close()

    async def test_two_processes_opening_it_at_once_migrate_it_once(self, v1_path):
        opener = """
            import sys
            from resumable.stores import SQLiteStore
            sys.stdin.readline()
            SQLiteStore(sys.argv[1])
            print("opened")
        """
        procs = [await python(opener, str(v1_path)) for _ in range(3)]
        for proc in procs:
            proc.stdin.write(b"go\n")
        for proc in procs:
            assert (await finished(proc)).strip() == "opened"
        with closing(sqlite3.connect(v1_path)) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


class TestReopen:
    """Everything written survives closing and reopening the file."""

    async def test_records_and_checkpoints_survive(self, path, make_record):
        store = SQLiteStore(path)
        lease = await store.create(make_record("e1", args=b"\x00args"), "a", TTL)
        assert lease is not None
        await store.write(lease, {"k": b"v", "gone": b"x"})
        await store.write(lease, {"k2": b"v2"}, deletes=["gone"])
        await store.update(lease, ExecutionUpdate(status="failed", error_text="boom"))
        before = await store.get("e1")
        await store.close()

        reopened = SQLiteStore(path)
        try:
            assert await reopened.get("e1") == before
            assert await reopened.load("e1") == {"k": b"v", "k2": b"v2"}
            await reopened.write(lease, {"k3": b"v3"})  # the lease is in the file too
        finally:
            await reopened.close()

    async def test_two_connections_see_each_other(self, path, make_record):
        one, two = SQLiteStore(path), SQLiteStore(path)
        try:
            lease = await one.create(make_record("e1"), "a", TTL)
            assert lease is not None
            await one.write(lease, {"k": b"1"})
            assert await two.load("e1") == {"k": b"1"}
            assert await two.create(make_record("e1"), "b", TTL) is None
        finally:
            await one.close()
            await two.close()


class TestProcesses:
    """Processes sharing the file see each other's commits, and are fenced."""

    CHILD_WRITES = """
        import asyncio, sys
        from resumable.stores.sqlite import SQLiteStore

        async def main():
            store = SQLiteStore(sys.argv[1])
            lease = await store.acquire("e1", "child", 30)
            await store.write(lease, {"from": b"child"}, deletes=["parent"])
            print(lease.token)
            await store.close()

        asyncio.run(main())
    """

    CHILD_READS = """
        import asyncio, json, sys
        from resumable.stores.sqlite import SQLiteStore

        async def main():
            store = SQLiteStore(sys.argv[1])
            loaded = await store.load("e1")
            record = await store.get("e1")
            print(json.dumps({k: v.decode() for k, v in loaded.items()} | {"@": record.owner}))
            await store.close()

        asyncio.run(main())
    """

    async def test_child_write_is_visible_here(self, sqlite, path, make_record):
        lease = await sqlite.create(make_record("e1"), "parent", TTL)
        assert lease is not None
        await sqlite.write(lease, {"parent": b"1"})
        await sqlite.release(lease)
        out = await finished(await python(self.CHILD_WRITES, str(path)))
        assert int(out) == lease.token + 1
        assert await sqlite.load("e1") == {"from": b"child"}
        record = await sqlite.get("e1")
        assert record is not None
        assert record.owner == "child"

    async def test_our_write_is_visible_to_a_child(self, sqlite, path, make_record):
        lease = await sqlite.create(make_record("e1"), "parent", TTL)
        assert lease is not None
        await sqlite.write(lease, {"a": b"1", "b": b"2"})
        out = await finished(await python(self.CHILD_READS, str(path)))
        assert json.loads(out) == {"a": "1", "b": "2", "@": "parent"}

    async def test_a_child_taking_over_fences_us(self, sqlite, path, make_record):
        lease = await sqlite.create(make_record("e1"), "parent", 0.01)
        assert lease is not None
        await sqlite.write(lease, {"parent": b"1"})
        await asyncio.sleep(0.05)
        await finished(await python(self.CHILD_WRITES, str(path)))
        with pytest.raises(LeaseLost, match="child"):
            await sqlite.write(lease, {"parent": b"2"})
        assert await sqlite.load("e1") == {"from": b"child"}


class TestCrash:
    """SIGKILL in the middle of writes leaves the last committed state intact."""

    WRITER = """
        import asyncio, sys
        from resumable.stores.sqlite import SQLiteStore

        async def main():
            store = SQLiteStore(sys.argv[1])
            lease = await store.acquire("e1", "child", 60, steal_token=int(sys.argv[2]))
            loaded = await store.load("e1")
            i = int(loaded.get("counter", b"-1")) + 1
            while True:
                # Three records and a delete per write: a torn write would
                # show as counter != mirror, or a wrong window of items.
                await store.write(
                    lease,
                    {"counter": b"%d" % i, "mirror": b"%d" % i, f"item-{i}": b"x" * 200},
                    deletes=[f"item-{i - 20}"],
                )
                print(i, flush=True)
                i += 1

        asyncio.run(main())
    """

    def check_consistent(self, loaded: dict[str, bytes], acknowledged: int) -> int:
        counter = int(loaded["counter"])
        assert loaded["mirror"] == loaded["counter"]
        assert counter >= acknowledged  # every acknowledged write survived
        items = sorted(int(key[5:]) for key in loaded if key.startswith("item-"))
        assert items == list(range(max(0, counter - 19), counter + 1))
        return counter

    async def test_sigkill_mid_write(self, sqlite, path, make_record):
        lease = await sqlite.create(make_record("e1"), "parent", TTL)
        assert lease is not None
        token = lease.token
        acknowledged = -1
        for round_ in range(6):
            proc = await python(self.WRITER, str(path), str(token))
            assert proc.stdout is not None
            target = acknowledged + 100 + 37 * round_
            while acknowledged < target:
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert line, (await proc.stderr.read()).decode() if proc.stderr else ""
                acknowledged = int(line)
            # A random moment inside the next write or so, not right after a print.
            await asyncio.sleep(random.random() * 0.002)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            assert proc.returncode == -signal.SIGKILL

            counter = self.check_consistent(await sqlite.load("e1"), acknowledged)
            acknowledged = counter
            record = await sqlite.get("e1")
            assert record is not None
            assert record.owner == "child"
            token = record.lease_token
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class TestInline:
    """Writes run on the event-loop thread, not through a worker thread."""

    async def test_statements_run_on_the_loop_thread(self, sqlite, make_record):
        lease = await sqlite.create(make_record("e1"), "a", TTL)
        assert lease is not None
        seen: list[tuple[int, str]] = []
        sqlite._conn.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))
        for i in range(20):
            await sqlite.write(lease, {f"k{i}": b"v"})
        sqlite._conn.set_trace_callback(None)
        assert sum("INSERT INTO checkpoints" in sql for _, sql in seen) == 20
        assert {ident for ident, _ in seen} == {threading.get_ident()}


class TestWalCheckpoints:
    """The WAL is copied into the database by a worker thread, not inside our commits."""

    async def test_checkpoints_run_in_the_background(self, sqlite, path, make_record):
        # SQLite's own checkpoint (inline, inside a commit) only as a backstop.
        assert sqlite._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 10_000
        lease = await sqlite.create(make_record("e1"), "a", TTL)
        assert lease is not None
        size = path.stat().st_size
        for i in range(1500):  # ~3000 WAL pages: a few background checkpoints
            await sqlite.write(lease, {f"k{i}": b"x" * 100})
        # The loop never yields, so checkpoints run while it writes. One that
        # is asked for while another still runs is skipped until the next
        # write; on a loaded machine (xdist), the first, with its fsync, may
        # outlast the whole loop. So: wait for the running one, and one more
        # write asks for a checkpoint again if one was skipped.
        await checkpoints_done(sqlite)
        await sqlite.write(lease, {"last": b"x" * 100})
        await checkpoints_done(sqlite)
        assert sqlite.stats.extra.get("wal_checkpoints", 0) >= 1
        assert "wal_checkpoint_errors" not in sqlite.stats.extra
        assert path.stat().st_size > size + 100_000  # the records reached the main file

    async def test_close_waits_for_a_running_checkpoint(self, path, make_record):
        store = SQLiteStore(path)
        lease = await store.create(make_record("e1"), "a", TTL)
        assert lease is not None
        for i in range(600):
            await store.write(lease, {f"k{i}": b"x" * 100})
        await store.close()
        assert store._checkpoint_running is False
        reopened = SQLiteStore(path)
        try:
            assert len(await reopened.load("e1")) == 600
        finally:
            await reopened.close()


@pytest.fixture(name="locker")
def _locker(sqlite, path):
    """Another connection to the file, ready to hold its write lock."""
    conn = sqlite3.connect(path, isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


class TestBusy:
    """When another connection holds the lock, the wait moves off the event loop."""

    async def test_write_waits_without_blocking_the_loop(self, sqlite, locker, make_record):
        lease = await sqlite.create(make_record("e1"), "a", TTL)
        assert lease is not None
        locker.execute("BEGIN IMMEDIATE")
        first = asyncio.create_task(sqlite.write(lease, {"k": b"first"}))
        second = asyncio.create_task(sqlite.write(lease, {"k": b"second", "two": b"2"}))
        started = time.monotonic()
        for _ in range(30):
            await asyncio.sleep(0.01)
        # The loop kept running: only the few-ms inline attempt blocked it.
        assert time.monotonic() - started < 1.0
        assert not first.done()
        assert not second.done()
        locker.execute("COMMIT")
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        # The queued write ran after the waiting one: order is kept.
        assert await sqlite.load("e1") == {"k": b"second", "two": b"2"}
        assert sqlite.stats.extra["busy_retries"] >= 1
        assert sqlite.stats.writes == 2

    async def test_lock_held_too_long_raises_store_unavailable(self, path, locker, make_record):
        store = SQLiteStore(path, busy_timeout=0.2)
        try:
            lease = await store.create(make_record("e1"), "a", TTL)
            assert lease is not None
            locker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable, match="writing a checkpoint") as info:
                await store.write(lease, {"k": b"v"})
            assert "0.2s" in str(info.value)
            locker.execute("COMMIT")
            assert await store.load("e1") == {}
            assert store.stats.writes == 0
            await store.write(lease, {"k": b"v"})  # usable again once the lock is gone
            assert await store.load("e1") == {"k": b"v"}
        finally:
            await store.close()

    async def test_cancelled_waiter_does_not_free_the_connection_early(
        self, path, locker, make_record
    ):
        store = SQLiteStore(path, busy_timeout=3)
        try:
            lease = await store.create(make_record("e1"), "a", TTL)
            assert lease is not None
            locker.execute("BEGIN IMMEDIATE")
            waiting = asyncio.create_task(store.write(lease, {"k": b"first"}))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # The worker thread still waits on the connection: a new write
            # must queue behind it, not call into the connection from the
            # loop thread (which would block the loop until the busy timeout).
            after = asyncio.create_task(store.write(lease, {"k": b"after"}))
            started = time.monotonic()
            await asyncio.sleep(0.05)
            assert time.monotonic() - started < 1.0
            assert not after.done()
            locker.execute("COMMIT")
            await asyncio.wait_for(after, 10)
            assert await store.load("e1") == {"k": b"after"}
        finally:
            await store.close()
