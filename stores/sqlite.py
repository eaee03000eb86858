"""`SQLiteStore`: the embedded default, one database file shared by processes.

Why writes run inline, on the event-loop thread: waking another thread costs
100-170 µs on the machines we measured (README, "Benchmarks"), while a whole WAL commit
with synchronous=NORMAL costs ~20-30 µs. Handing every checkpoint to
`asyncio.to_thread` would make the hop, not the disk, the cost of a
checkpoint. So every operation is a short synchronous transaction on the
loop thread, with a busy timeout of a few milliseconds. Only when another
process holds the write lock longer than that does the operation move to a
worker thread, which waits (up to `busy_timeout`) without blocking the loop;
until it finishes, later operations of this store wait for it, so the one
connection is never used by two threads at once.

What does go to a thread is the one slow, batched job: copying the WAL back
into the database (a WAL checkpoint, with an fsync). SQLite would otherwise
run it inside every ~400th commit, stalling the loop for 4-7 ms each time
(a third of the total time of a tight write loop, measured here).

Durability: WAL with synchronous=NORMAL survives any crash of the process
(a committed transaction is in the WAL file, which the OS keeps); FULL also
survives power loss, at an fsync per commit (~150-250 µs here).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote

from resumable.errors import ExecutionNotFound, StoreReadOnly, StoreUnavailable
from resumable.stores import _sqlite_errors as errors
from resumable.stores import _sqlite_sql as sql
from resumable.stores import checks, leases
from resumable.stores.base import (
    DEFAULT_MAX_RECORD_BYTES,
    ExecutionRecord,
    ExecutionUpdate,
    KeyScope,
    Lease,
    StoreStats,
)
from resumable.stores.statuses import Status
from resumable.stores.url import StoreURL, sqlite_url

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SQLiteStore", "Synchronous"]

Synchronous = Literal["normal", "full"]
T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT = 30.0
# How long an inline (event-loop thread) operation waits for another
# process's write lock before moving to a worker thread.
INLINE_BUSY_TIMEOUT_MS = 5
# WAL pages (estimated) between background checkpoints: SQLite's default.
CHECKPOINT_PAGES = 1000
# SQLite's own, inline checkpoint stays as a backstop: under a write stream
# that never pauses, a background checkpoint never quite catches up, and only
# a checkpoint between two of our commits lets the WAL file start over.
BACKSTOP_PAGES = 10_000
_PAGE = 4096


class SQLiteStore:
    """A Store in one SQLite file (WAL); several processes may share the file.

    One instance belongs to one event loop at a time (it is not thread-safe);
    each process opens its own.
    """

    key_scope: ClassVar[KeyScope] = "user"
    url: str
    stats: StoreStats

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "normal",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous={synchronous!r}: expected 'normal' or 'full'")
        checks.check_max_record_bytes(max_record_bytes)
        if not busy_timeout > 0:
            raise ValueError(
                f"busy_timeout={busy_timeout!r}: expected a positive number of seconds"
            )
        self.path = os.path.abspath(os.fspath(path))
        self.synchronous: Synchronous = synchronous
        self.max_record_bytes = max_record_bytes
        self.busy_timeout = busy_timeout
        self.url = sqlite_url(self.path) + ("?synchronous=full" if synchronous == "full" else "")
        self.stats = StoreStats()
        # The worker-thread operation in progress, if any (see _slow_path).
        self._pending: asyncio.Future[Any] | None = None
        # Background WAL checkpoints: a connection of their own, one at a time.
        self._unflushed_pages = 0
        self._checkpoint_running = False
        self._checkpointing: asyncio.Future[None] | None = None
        self._checkpointer: sqlite3.Connection | None = None
        # Set when the file could only be opened for reading (_open_read_only).
        self.read_only = False
        self._read_only_reason = ""
        self._conn: sqlite3.Connection | None = self._open()

    @classmethod
    def from_url(cls, parsed: StoreURL) -> SQLiteStore:
        """The store a ``sqlite://`` URL (or a bare path) names, with its
        options: synchronous, max_record_bytes, busy_timeout."""
        parsed.refuse_unknown(("busy_timeout", "max_record_bytes", "synchronous"))
        synchronous: Synchronous = parsed.choice("synchronous", ("normal", "full"), "normal")
        return cls(
            parsed.path,
            synchronous=synchronous,
            max_record_bytes=parsed.number("max_record_bytes", int, DEFAULT_MAX_RECORD_BYTES),
            busy_timeout=parsed.number("busy_timeout", float, DEFAULT_BUSY_TIMEOUT),
        )

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    def _open(self) -> sqlite3.Connection:
        operation = "opening the database"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            conn = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise errors.error(self.url, self.path, operation, exc) from exc
        try:
            # Opening is rare and may meet another process's lock (switching a
            # new file to WAL needs it): it waits the full busy_timeout.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(
                    f"cannot use WAL journaling here (journal_mode is {mode}); "
                    "is the file on a network file system?"
                )
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            sql.migrate(conn)
            conn.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            conn.close()
            failure = errors.error(self.url, self.path, operation, exc)
            if isinstance(failure, StoreReadOnly) and os.path.exists(self.path):
                return self._open_read_only(failure)
            raise failure from exc
        return conn

    def _open_read_only(self, failure: StoreReadOnly) -> sqlite3.Connection:
        """A file this process may read but not write, opened for reading,
        so that `list` and `show` work; every write then raises StoreReadOnly.

        SQLite reads a WAL file read-only (mode=ro) only if it can use the
        -shm file beside it, which a read-only directory may not allow. Then,
        if no -wal file holds commits the file itself lacks, it is opened
        `immutable`: read as it is, without locks. That is safe for reading
        here, since no process could write it without the directory access
        this one lacks to create a -wal file; were one to do so anyway, this
        one would see the file as it was, or an error, never damage it.
        """
        uri = "file:" + quote(self.path) + "?mode=ro"
        wal = self.path + "-wal"
        try:
            conn = self._check_readable(self._connect(uri))
        except sqlite3.Error as exc:
            if os.path.exists(wal) and os.path.getsize(wal) > 0:
                raise StoreReadOnly(
                    self.url,
                    self.path,
                    "opening the database",
                    f"{failure.reason}; its write-ahead log {wal} holds commits that cannot "
                    "be read without write access",
                ) from exc
            try:
                conn = self._check_readable(self._connect(uri + "&immutable=1"))
            except sqlite3.Error as again:
                raise errors.error(self.url, self.path, "opening the database", again) from again
        self.read_only = True
        self._read_only_reason = failure.reason
        return conn

    def _check_readable(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        try:
            sql.check_current(conn)
            conn.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self, uri: str | None = None) -> sqlite3.Connection:
        # check_same_thread=False: connections are handed to worker threads,
        # never while another thread uses them. Autocommit (isolation_level
        # None): every transaction is explicit (see _sqlite_sql).
        return sqlite3.connect(
            uri or self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            uri=uri is not None,
        )

    # -- the Store protocol ---------------------------------------------------

    async def create(self, record: ExecutionRecord, owner: str, ttl: float) -> Lease | None:
        checks.check_create(record, ttl, self.max_record_bytes)
        return await self._run("creating an execution", sql.create_execution, record, owner, ttl)

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        return await self._run("reading an execution", sql.get_record, execution_id)

    async def acquire(
        self, execution_id: str, owner: str, ttl: float, *, steal_token: int | None = None
    ) -> Lease:
        leases.check_ttl(ttl)
        lease: Lease | None = await self._run(
            "acquiring a lease", sql.acquire_lease, execution_id, owner, ttl, steal_token
        )
        if lease is None:
            raise ExecutionNotFound(execution_id, self.url)
        return lease

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        leases.check_ttl(ttl)
        return await self._run("renewing a lease", sql.renew_lease, lease, ttl)

    async def release(self, lease: Lease) -> None:
        await self._run("releasing a lease", sql.release_lease, lease)

    async def write(
        self, lease: Lease, puts: Mapping[str, bytes], deletes: Collection[str] = ()
    ) -> None:
        written = checks.check_puts(lease.execution_id, puts, self.max_record_bytes)
        # The hot path of every checkpoint: `_run`'s inline branch, inlined.
        conn = self._conn
        pending = self._pending
        if conn is not None and (pending is None or pending.done()):
            try:
                sql.write_records(conn, lease, puts, deletes)
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    raise self._unavailable("writing a checkpoint", exc) from exc
                await self._slow_path(
                    "writing a checkpoint", sql.write_records, lease, puts, deletes
                )
        else:
            await self._run("writing a checkpoint", sql.write_records, lease, puts, deletes)
        self.stats.wrote(len(puts), written)
        # Each commit adds a few pages to the WAL: a leaf or two, and overflow
        # pages for big values.
        self._unflushed_pages += 2 + len(deletes) + written // _PAGE
        if self._unflushed_pages >= CHECKPOINT_PAGES:
            self._checkpoint_in_background()

    async def update(self, lease: Lease, update: ExecutionUpdate) -> ExecutionRecord:
        checks.check_update(lease.execution_id, update, self.max_record_bytes)
        return await self._run("updating an execution", sql.update_execution, lease, update)

    async def load(self, execution_id: str) -> dict[str, bytes]:
        loaded = await self._run("loading checkpoints", sql.load_records, execution_id)
        self.stats.loads += 1
        return loaded

    async def load_headers(self, execution_id: str) -> dict[str, bytes]:
        return await self._run("loading checkpoint headers", sql.load_headers, execution_id)

    async def list(
        self,
        *,
        status: Status | None = None,
        function: str | None = None,
        parent_id: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRecord]:
        checks.check_limit(limit)
        return await self._run(
            "listing executions", sql.list_records, status, function, parent_id, limit
        )

    async def request_cancel(self, execution_id: str) -> bool:
        return await self._run("requesting cancellation", sql.request_cancel, execution_id)

    async def cancel_requested(self, execution_id: str) -> bool:
        return await self._run("checking for a cancel request", sql.cancel_requested, execution_id)

    async def delete(self, execution_id: str) -> bool:
        return await self._run("deleting an execution", sql.delete_execution, execution_id)

    async def close(self) -> None:
        for future in (self._pending, self._checkpointing):
            if future is not None and not future.done():
                await asyncio.wait((future,))
        conn, self._conn = self._conn, None
        checkpointer, self._checkpointer = self._checkpointer, None
        for connection in (checkpointer, conn):
            if connection is not None:
                connection.close()  # the last one to close also checkpoints the WAL

    # -- running transactions -------------------------------------------------

    async def _run(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        # Wait out a worker-thread operation first: it owns the connection.
        while (pending := self._pending) is not None and not pending.done():
            await asyncio.wait((pending,))
        conn = self._conn
        if conn is None:
            raise StoreUnavailable(self.url, operation, "the store was closed")
        try:
            return fn(conn, *args)
        except sqlite3.Error as exc:
            if not _is_busy(exc):
                raise self._unavailable(operation, exc) from exc
        return await self._slow_path(operation, fn, *args)

    async def _slow_path(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        # Another process held the write lock past the inline wait: wait for it
        # on a worker thread so the event loop keeps running. Shielded, because
        # the thread cannot be stopped: a cancelled caller must not let another
        # operation onto the connection while the thread still uses it.
        self._count("busy_retries")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, self._patiently, operation, fn, args)
        self._pending = future
        return await asyncio.shield(future)

    def _patiently(self, operation: str, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreUnavailable(self.url, operation, "the store was closed")
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        try:
            return fn(conn, *args)
        except sqlite3.Error as exc:
            raise self._unavailable(operation, exc) from exc
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")

    def _checkpoint_in_background(self) -> None:
        # A flag the worker thread clears, not the future's done(): a loop
        # that checkpoints without ever yielding (CPU-bound work) never lets
        # asyncio mark the future done.
        if self._checkpoint_running:
            return  # the next write asks again
        try:
            future = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
        except RuntimeError:  # the loop's executor is shut down: leave it to the backstop
            return
        self._checkpoint_running = True
        self._unflushed_pages = 0
        future.add_done_callback(_ignore_result)
        self._checkpointing = future

    def _checkpoint(self) -> None:
        # PASSIVE: copy what it can without waiting for any reader or writer,
        # so our own inline commits go on meanwhile. Errors are ignored: the
        # WAL is merely longer until the next checkpoint (or the backstop).
        try:
            if self._checkpointer is None:
                self._checkpointer = self._connect()
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._count("wal_checkpoints")
        except sqlite3.Error:
            self._count("wal_checkpoint_errors")
        finally:
            self._checkpoint_running = False

    def _count(self, counter: str) -> None:
        extra = self.stats.extra
        extra[counter] = extra.get(counter, 0) + 1

    def _unavailable(self, operation: str, exc: sqlite3.Error) -> StoreUnavailable:
        if self.read_only and errors.primary_code(exc) == sqlite3.SQLITE_READONLY:
            return StoreReadOnly(self.url, self.path, operation, self._read_only_reason)
        if _is_busy(exc):
            held = f"another process held the database lock for over {self.busy_timeout:g}s"
            return StoreUnavailable(self.url, operation, f"{exc} ({held})")
        return errors.error(self.url, self.path, operation, exc)


_is_busy = errors.is_busy


def _ignore_result(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it as lost
