"""`SQLiteStore`: the embedded default, one database file shared by processes.

Why writes run inline, on the event-loop thread: waking another thread costs
100-170 µs on the machines we measured (DESIGN §11), while a whole WAL commit
with synchronous=NORMAL costs ~20-30 µs. Handing every checkpoint to
`asyncio.to_thread` would make the hop, not the disk, the cost of a
checkpoint. So every operation is a short synchronous transaction on the
loop thread, with a busy timeout of a few milliseconds. Only when another
process holds the write lock longer than that does the operation move to a
worker thread, which waits (up to `busy_timeout`) without blocking the loop;
until it finishes, later operations of this store wait for it, so the one
connection is never used by two threads at once.

Durability: WAL with synchronous=NORMAL survives any crash of the process
(a committed transaction is in the WAL file, which the OS keeps); FULL also
survives power loss, at an fsync per commit. Every transaction is `BEGIN
IMMEDIATE ... COMMIT` in autocommit mode, so the fencing check and the
changes it guards are one atomic step: a stale owner's write changes nothing.

Schema: `executions` (one row per ExecutionRecord) and `checkpoints`
(execution_id, key, value). `checkpoints` is a rowid table: WITHOUT ROWID was
~13% faster for 100-byte values here but 50% slower, and 2.4x larger on disk,
for 2 KB values (SQLite stores big rows of a WITHOUT ROWID table poorly), and
item results are often that big.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, TypeVar

from resumable.errors import ExecutionNotFound, StoreUnavailable
from resumable.stores import _common
from resumable.stores.base import (
    DEFAULT_MAX_RECORD_BYTES,
    ExecutionRecord,
    ExecutionUpdate,
    Lease,
    Status,
    StoreStats,
)
from resumable.stores.url import sqlite_url

__all__ = ["SQLiteStore", "Synchronous"]

Synchronous = Literal["normal", "full"]
T = TypeVar("T")

SCHEMA_VERSION = 1
# How long an inline (event-loop thread) operation waits for another
# process's write lock before moving to a worker thread.
INLINE_BUSY_TIMEOUT_MS = 5
DEFAULT_BUSY_TIMEOUT = 30.0

_COLUMNS = tuple(f.name for f in dataclasses.fields(ExecutionRecord))
assert _COLUMNS[-1] == "cancel_requested"  # the one column that needs a bool()
_SELECT_RECORD = f"SELECT {', '.join(_COLUMNS)} FROM executions"  # noqa: S608 (constants)
_INSERT_RECORD = (
    f"INSERT INTO executions ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_COLUMNS))}) ON CONFLICT(id) DO NOTHING"
)
_SELECT_LEASE = "SELECT lease_token, owner, lease_expires_at FROM executions WHERE id = ?"
_PUT = (
    "INSERT INTO checkpoints (execution_id, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT(execution_id, key) DO UPDATE SET value = excluded.value"
)
_DELETE = "DELETE FROM checkpoints WHERE execution_id = ? AND key = ?"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    name TEXT NOT NULL,
    args BLOB NOT NULL,
    fingerprint TEXT NOT NULL,
    location TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    result BLOB,
    error BLOB,
    error_text TEXT,
    owner TEXT,
    lease_expires_at REAL NOT NULL,
    lease_token INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_created_at ON executions (created_at);
CREATE TABLE IF NOT EXISTS checkpoints (
    execution_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (execution_id, key)
);
"""


class SQLiteStore:
    """A Store in one SQLite file (WAL); several processes may share the file.

    One instance belongs to one event loop at a time (it is not thread-safe);
    each process opens its own.
    """

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
        _common.check_max_record_bytes(max_record_bytes)
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
        self._conn: sqlite3.Connection | None = self._open()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    def _open(self) -> sqlite3.Connection:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            # check_same_thread=False: the slow path hands the connection to a
            # worker thread, never while the loop thread uses it.
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(self.url, "opening the database", str(exc)) from exc
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
            self._migrate(conn)
            conn.execute(f"PRAGMA busy_timeout = {INLINE_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(self.url, "opening the database", str(exc)) from exc
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with _Immediate(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _schema_too_new(version)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- the Store protocol ---------------------------------------------------

    async def create(self, record: ExecutionRecord, owner: str, ttl: float) -> Lease | None:
        _common.check_ttl(ttl)
        if len(record.args) > self.max_record_bytes:
            raise _common.record_too_big(record.id, "args", len(record.args), self.max_record_bytes)
        return await self._run("creating an execution", _create, record, owner, ttl)

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        return await self._run("reading an execution", _get, execution_id)

    async def acquire(
        self, execution_id: str, owner: str, ttl: float, *, steal_token: int | None = None
    ) -> Lease:
        _common.check_ttl(ttl)
        lease: Lease | None = await self._run(
            "acquiring a lease", _acquire, execution_id, owner, ttl, steal_token
        )
        if lease is None:
            raise ExecutionNotFound(execution_id, self.url)
        return lease

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        _common.check_ttl(ttl)
        return await self._run("renewing a lease", _renew, lease, ttl)

    async def release(self, lease: Lease) -> None:
        await self._run("releasing a lease", _release, lease)

    async def write(
        self, lease: Lease, puts: Mapping[str, bytes], deletes: Collection[str] = ()
    ) -> None:
        written = _common.check_puts(lease.execution_id, puts, self.max_record_bytes)
        # The hot path of every checkpoint: `_run`'s inline branch, inlined.
        conn = self._conn
        pending = self._pending
        if conn is not None and (pending is None or pending.done()):
            try:
                _write(conn, lease, puts, deletes)
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    raise self._unavailable("writing a checkpoint", exc) from exc
                await self._slow_path("writing a checkpoint", _write, lease, puts, deletes)
        else:
            await self._run("writing a checkpoint", _write, lease, puts, deletes)
        stats = self.stats
        stats.writes += 1
        stats.records_written += len(puts)
        stats.bytes_written += written

    async def update(self, lease: Lease, update: ExecutionUpdate) -> ExecutionRecord:
        _common.check_update(lease.execution_id, update, self.max_record_bytes)
        return await self._run("updating an execution", _update, lease, update)

    async def load(self, execution_id: str) -> dict[str, bytes]:
        loaded = await self._run("loading checkpoints", _load, execution_id)
        self.stats.loads += 1
        return loaded

    async def list(
        self, *, status: Status | None = None, function: str | None = None, limit: int = 100
    ) -> list[ExecutionRecord]:
        _common.check_limit(limit)
        return await self._run("listing executions", _list, status, function, limit)

    async def request_cancel(self, execution_id: str) -> bool:
        return await self._run("requesting cancellation", _request_cancel, execution_id)

    async def delete(self, execution_id: str) -> bool:
        return await self._run("deleting an execution", _delete, execution_id)

    async def close(self) -> None:
        while (pending := self._pending) is not None and not pending.done():
            await asyncio.wait((pending,))
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

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
        self.stats.extra["busy_retries"] = self.stats.extra.get("busy_retries", 0) + 1
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

    def _unavailable(self, operation: str, exc: sqlite3.Error) -> StoreUnavailable:
        reason = str(exc)
        if _is_busy(exc):
            reason += f" (another process held the database lock for over {self.busy_timeout:g}s)"
        return StoreUnavailable(self.url, operation, reason)


def _schema_too_new(version: int) -> sqlite3.OperationalError:
    return sqlite3.OperationalError(
        f"the file has schema version {version}, newer than this version of resumable "
        f"understands ({SCHEMA_VERSION}); upgrade resumable"
    )


def _is_busy(exc: sqlite3.Error) -> bool:
    code = (
        getattr(exc, "sqlite_errorcode", 0) & 0xFF
    )  # extended codes keep the primary in the low byte
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the original error matters more
            conn.execute("ROLLBACK")


class _Immediate:
    """`with _Immediate(conn):` runs the block as one BEGIN IMMEDIATE transaction.

    IMMEDIATE takes the write lock at BEGIN, so what the block reads (the
    fencing token) cannot change before it commits, and SQLITE_BUSY can only
    happen at BEGIN, before anything was done. Any exception rolls back.
    A class rather than @contextmanager: it is on the hot path, and ~3x cheaper.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                _rollback(self.conn)
                raise
        else:
            _rollback(self.conn)


def _record(row: tuple[Any, ...]) -> ExecutionRecord:
    values = list(row)
    values[-1] = bool(values[-1])  # cancel_requested is stored as 0/1
    return ExecutionRecord(*values)


def _fence(conn: sqlite3.Connection, lease: Lease) -> None:
    """Raise LeaseLost unless `lease` is current; call inside the transaction."""
    row = conn.execute(_SELECT_LEASE, (lease.execution_id,)).fetchone()
    if row is None:
        raise _common.lease_lost(lease, found=False)
    if not _common.fence_holds(lease, row[0], row[1]):
        raise _common.lease_lost(
            lease, found=True, owner=row[1], expires_at=row[2], now=time.time()
        )


# Each function below runs as a whole on one thread (see SQLiteStore._run).


def _create(
    conn: sqlite3.Connection, record: ExecutionRecord, owner: str, ttl: float
) -> Lease | None:
    with _Immediate(conn):
        now = time.time()
        lease = Lease(record.id, owner, record.lease_token + 1, now + ttl)
        row = dataclasses.replace(
            record,
            created_at=record.created_at or now,
            updated_at=now,
            owner=owner,
            lease_token=lease.token,
            lease_expires_at=lease.expires_at,
        )
        values = tuple(getattr(row, column) for column in _COLUMNS)
        if not conn.execute(_INSERT_RECORD, values).rowcount:
            return None
        # Leftovers cannot exist (delete is atomic), but a new execution must
        # never see records it did not write.
        conn.execute("DELETE FROM checkpoints WHERE execution_id = ?", (record.id,))
    return lease


def _get(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
    row = conn.execute(f"{_SELECT_RECORD} WHERE id = ?", (execution_id,)).fetchone()
    return None if row is None else _record(row)


def _acquire(
    conn: sqlite3.Connection, execution_id: str, owner: str, ttl: float, steal_token: int | None
) -> Lease | None:
    with _Immediate(conn):
        row = conn.execute(_SELECT_LEASE, (execution_id,)).fetchone()
        if row is None:
            return None
        token, current_owner, expires_at = row
        now = time.time()
        if not _common.lease_is_free(current_owner, expires_at, token, now, steal_token):
            raise _common.locked(execution_id, current_owner, expires_at, now)
        lease = Lease(execution_id, owner, token + 1, now + ttl)
        conn.execute(
            "UPDATE executions SET owner = ?, lease_token = ?, lease_expires_at = ?, "
            "updated_at = ? WHERE id = ?",
            (owner, lease.token, lease.expires_at, now, execution_id),
        )
    return lease


def _renew(conn: sqlite3.Connection, lease: Lease, ttl: float) -> Lease:
    with _Immediate(conn):
        _fence(conn, lease)
        now = time.time()
        renewed = dataclasses.replace(lease, expires_at=now + ttl)
        conn.execute(
            "UPDATE executions SET lease_expires_at = ?, updated_at = ? WHERE id = ?",
            (renewed.expires_at, now, lease.execution_id),
        )
    return renewed


def _release(conn: sqlite3.Connection, lease: Lease) -> None:
    with _Immediate(conn):
        row = conn.execute(_SELECT_LEASE, (lease.execution_id,)).fetchone()
        if row is not None and row[0] == lease.token and row[1] is None:
            return  # already released by this lease: releasing is idempotent
        _fence(conn, lease)
        conn.execute(
            "UPDATE executions SET owner = NULL, lease_expires_at = 0, updated_at = ? WHERE id = ?",
            (time.time(), lease.execution_id),
        )


def _write(
    conn: sqlite3.Connection, lease: Lease, puts: Mapping[str, bytes], deletes: Collection[str]
) -> None:
    execution_id = lease.execution_id
    with _Immediate(conn):
        _fence(conn, lease)
        if deletes:  # deletes first, so a key both deleted and put ends up put
            conn.executemany(_DELETE, [(execution_id, key) for key in deletes])
        if len(puts) == 1:  # the common case; execute() is cheaper than executemany()
            [(key, value)] = puts.items()
            conn.execute(_PUT, (execution_id, key, value))
        elif puts:
            conn.executemany(_PUT, [(execution_id, key, value) for key, value in puts.items()])


def _update(conn: sqlite3.Connection, lease: Lease, update: ExecutionUpdate) -> ExecutionRecord:
    changes = _common.update_changes(update)
    changes["updated_at"] = time.time()
    assignments = ", ".join(f"{name} = ?" for name in changes)  # names are constants
    with _Immediate(conn):
        _fence(conn, lease)
        conn.execute(
            f"UPDATE executions SET {assignments} WHERE id = ?",  # noqa: S608
            (*changes.values(), lease.execution_id),
        )
        if update.clear_checkpoints:
            conn.execute("DELETE FROM checkpoints WHERE execution_id = ?", (lease.execution_id,))
        row = conn.execute(f"{_SELECT_RECORD} WHERE id = ?", (lease.execution_id,)).fetchone()
    return _record(row)


def _load(conn: sqlite3.Connection, execution_id: str) -> dict[str, bytes]:
    rows = conn.execute(
        "SELECT key, value FROM checkpoints WHERE execution_id = ?", (execution_id,)
    ).fetchall()
    return dict(rows)


def _list(
    conn: sqlite3.Connection, status: Status | None, function: str | None, limit: int
) -> list[ExecutionRecord]:
    where: list[str] = []
    params: list[object] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if function is not None:
        where.append("function = ?")
        params.append(function)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    # rowid breaks created_at ties newest-inserted first, like MemoryStore.
    rows = conn.execute(
        f"{_SELECT_RECORD}{clause} ORDER BY created_at DESC, rowid DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    return [_record(row) for row in rows]


def _request_cancel(conn: sqlite3.Connection, execution_id: str) -> bool:
    cursor = conn.execute(
        "UPDATE executions SET cancel_requested = 1, updated_at = ? WHERE id = ?",
        (time.time(), execution_id),
    )
    return cursor.rowcount > 0


def _delete(conn: sqlite3.Connection, execution_id: str) -> bool:
    with _Immediate(conn):
        conn.execute("DELETE FROM checkpoints WHERE execution_id = ?", (execution_id,))
        deleted: int = conn.execute("DELETE FROM executions WHERE id = ?", (execution_id,)).rowcount
    return deleted > 0
