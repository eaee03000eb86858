"""`RedisStore`: executions shared by processes on any number of machines.

Layout (see `_redis_lua` for the scripts): per execution, a record hash and a
checkpoint hash under one hash tag ``{<prefix>:<id>}``, so each script touches
one Redis Cluster slot; plus one sorted set ``<prefix>:index`` of every
execution id scored by `created_at`, for `list` without KEYS or SCAN.

The index lives in another slot than the executions, so it cannot change in
the scripts' atomic steps (Redis Cluster refuses scripts across slots). It
is kept a superset of the executions instead: an id joins it before its
record is created (in the same pipeline, one round trip) and leaves it after
the record is deleted; `list` skips ids without a record. A crash between the
two commands leaves at worst an id without a record, never an execution that
`list` (and so `recover`) cannot find. The status filter is applied while
paging through the index, reading only the status, function and parent_id
fields of each page before the records that match, like SQLite's scan of its
table. (Listing a parent's children pages through every id: `show` and
`cancel` do it once per parent, nothing on the checkpoint path does.)

Group commit: an awaited Redis write costs ~100-200 µs, a pipelined one
~20 µs (README, "Benchmarks"). `write` sends at once when no write of this store is in
flight; writes that arrive meanwhile queue up and go out together when it
returns: those of one lease merged into one script call (their net effect:
a key's last put or delete), several leases in one pipeline. Each caller's
await returns once the reply covering its own write is in, with its own
outcome (a fencing failure reaches the callers of that lease only). Only
one batch is in flight at a time, which also keeps retried writes in order.

Every operation is idempotent, so that `_redis_link` may send it again when
a reply was lost to a connection fault: writes set and delete keys, and
`create`/`acquire` carry a nonce, so a retry of one that did take the lease
finds its own lease instead of a lock. Connections, retries and event loops
are `_redis_link`'s business.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from resumable.errors import ExecutionNotFound, LeaseLost, StoreUnavailable
from resumable.stores import _redis_lua as lua
from resumable.stores import checks, leases
from resumable.stores._redis_link import Link, LoopClient, execute, pipeline
from resumable.stores.base import (
    DEFAULT_MAX_RECORD_BYTES,
    ExecutionRecord,
    ExecutionUpdate,
    KeyScope,
    Lease,
    StoreStats,
)
from resumable.stores.statuses import Status
from resumable.stores.url import StoreURL, parse_store_url, redact_url

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

DEFAULT_PREFIX = "resumable"
# Query options of the store URL that are ours; the rest go to redis-py.
_OWN_OPTIONS = ("max_record_bytes", "prefix", "unavailable_after")
# Ids read per index page when filtering (one pipelined round trip each).
_PAGE = 500
# Checkpoint fields read on the server per step of `load_headers`.
_HEADER_SCAN = 2000


@dataclass(eq=False, slots=True)
class _Write:
    lease: Lease
    puts: Mapping[str, bytes]
    deletes: list[str]
    future: asyncio.Future[None]  # resolved once the reply covering this write is in


# Inside RedisStore, `list` is the method: annotations use these names.
_Ids = list[str]
_Writes = list[_Write]
_Outcomes = list[BaseException | None]
_Records = list[ExecutionRecord | None]


@dataclass(eq=False, slots=True)
class _Batcher:
    """Group commit on one event loop's client: is a write in flight, and
    which writes wait for the next batch."""

    client: LoopClient
    writing: bool = False
    queue: _Writes = field(default_factory=list)
    flushes: set[asyncio.Task[None]] = field(default_factory=set)


class RedisStore:
    """A Store in Redis (or Valkey, or any server speaking its protocol).

    `url` is ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://``
    (TLS), with optional query options: ``prefix`` (namespace of the keys,
    default ``resumable``), ``max_record_bytes``, ``unavailable_after``, and
    any option redis-py understands (``socket_timeout``, ``ssl_cert_reqs``...).
    Several applications can share a server with different prefixes. Needs
    Redis 5 or later (scripts that call TIME before writing).
    """

    key_scope: ClassVar[KeyScope] = "shared"
    url: str
    stats: StoreStats

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        unavailable_after: float = 30.0,
    ) -> None:
        self.url = redact_url(url)
        parsed = parse_store_url(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise ValueError(f"RedisStore needs a redis:// or rediss:// URL, got {self.url!r}")
        own = parsed.options
        if "prefix" in own:
            if prefix not in (DEFAULT_PREFIX, own["prefix"]):
                raise ValueError(
                    f"prefix={prefix!r} and the URL's ?prefix={own['prefix']!r} disagree"
                )
            prefix = own["prefix"]
        max_record_bytes = int(parsed.number("max_record_bytes", float, max_record_bytes))
        unavailable_after = parsed.number("unavailable_after", float, unavailable_after)
        redis_url = parsed.without(_OWN_OPTIONS)
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix={prefix!r}: expected a non-empty name without braces")
        checks.check_max_record_bytes(max_record_bytes)
        for name, value in (
            ("connect_timeout", connect_timeout),
            ("command_timeout", command_timeout),
            ("unavailable_after", unavailable_after),
        ):
            if not value > 0:
                raise ValueError(f"{name}={value!r}: expected a positive number of seconds")
        self.prefix = prefix
        self.max_record_bytes = max_record_bytes
        self.unavailable_after = unavailable_after
        self.stats = StoreStats()
        self._link = Link(
            url=self.url,
            redis_url=redis_url,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            unavailable_after=unavailable_after,
            library=lua.LIBRARY,
            scripts=[script.source for script in lua.SCRIPTS.values()],
            stats=self.stats,
        )
        self._index = f"{prefix}:index"
        self._batcher: _Batcher | None = None

    @classmethod
    def from_url(cls, parsed: StoreURL) -> RedisStore:
        """The store a parsed URL names, options included (what `open_store` calls)."""
        return cls(parsed.url)

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    # -- the Store protocol ---------------------------------------------------

    async def create(self, record: ExecutionRecord, owner: str, ttl: float) -> Lease | None:
        checks.check_create(record, ttl, self.max_record_bytes)
        if not record.created_at:
            record = record.replace(created_at=time.time())
        token = leases.next_token(record.lease_token)
        args = [repr(float(ttl)), token, uuid.uuid4().hex, owner, *lua.record_fields(record)]
        score = repr(record.created_at)

        added, reply = await self._pipeline(
            f"creating execution {record.id!r}",
            lambda: [
                ("ZADD", self._index, "NX", score, record.id),
                self._command("create", self._tag(record.id), args),
            ],
        )
        if reply[0] == 0:
            return None
        if not added:  # an id left in the index by a crash, with an old score
            await self._link.do(
                f"creating execution {record.id!r}", "ZADD", self._index, "XX", score, record.id
            )
        return Lease(record.id, owner, token, float(reply[1]))

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        stored = await self._link.do(
            f"reading execution {execution_id!r}", "HGETALL", self._keys(execution_id)[0]
        )
        return lua.decode_record(stored)

    async def acquire(
        self, execution_id: str, owner: str, ttl: float, *, steal_token: int | None = None
    ) -> Lease:
        leases.check_ttl(ttl)
        steal = "" if steal_token is None else str(steal_token)
        args = [owner, repr(float(ttl)), steal, uuid.uuid4().hex]
        reply = await self._script(
            f"acquiring the lease of {execution_id!r}", "acquire", execution_id, args
        )
        if reply[0] == -1:
            raise ExecutionNotFound(execution_id, self.url)
        if reply[0] == 0:
            holder = reply[1].decode("utf-8", "replace")
            raise leases.locked(execution_id, holder, float(reply[2]), float(reply[3]))
        return Lease(execution_id, owner, int(reply[1]), float(reply[2]))

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        leases.check_ttl(ttl)
        expires = await self._script(
            f"renewing the lease of {lease.execution_id!r}",
            "renew",
            lease.execution_id,
            [lua.fence_arg(lease), repr(float(ttl))],
            lease=lease,
        )
        return Lease(lease.execution_id, lease.owner, lease.token, float(expires))

    async def release(self, lease: Lease) -> None:
        await self._script(
            f"releasing the lease of {lease.execution_id!r}",
            "release",
            lease.execution_id,
            [lua.fence_arg(lease)],
            lease=lease,
        )

    async def write(
        self, lease: Lease, puts: Mapping[str, bytes], deletes: Collection[str] = ()
    ) -> None:
        written = checks.check_puts(lease.execution_id, puts, self.max_record_bytes)
        batcher = self._batcher
        client = self._link.ready()
        if batcher is None or client is None or batcher.client is not client:
            batcher = self._batcher = _Batcher(await self._link.open("writing checkpoints"))
        if batcher.writing:  # a write is in flight: join the next batch
            future: asyncio.Future[None] = batcher.client.loop.create_future()
            batcher.queue.append(_Write(lease, puts, list(deletes), future))
            await future
        else:  # nothing in flight: send at once, on its own (the fast path)
            batcher.writing = True
            tag, args = self._tag(lease.execution_id), lua.write_args(lease, [(puts, deletes)])
            try:
                await self._script_on(
                    f"writing checkpoints of {lease.execution_id!r}", "write", tag, args, lease
                )
            finally:
                self._next_batch(batcher)
        self.stats.wrote(len(puts), written)

    async def update(self, lease: Lease, update: ExecutionUpdate) -> ExecutionRecord:
        checks.check_update(lease.execution_id, update, self.max_record_bytes)
        fields = lua.encode_fields(checks.update_changes(update))
        replacing = update.replace_checkpoints
        clear = "1" if update.clear_checkpoints or replacing is not None else "0"
        puts = [part for item in (replacing or {}).items() for part in item]
        stored = await self._script(
            f"updating execution {lease.execution_id!r}",
            "update",
            lease.execution_id,
            [lua.fence_arg(lease), clear, len(puts) // 2, *puts, *fields],
            lease=lease,
        )
        record = lua.decode_record(lua.pairs(stored))
        assert record is not None  # the fence found it
        return record

    async def cancel_requested(self, execution_id: str) -> bool:
        flag = await self._link.do(
            f"checking for a cancel request of {execution_id!r}",
            "HGET",
            self._keys(execution_id)[0],
            "cancel_requested",
        )
        return flag in (b"1", "1")

    async def load(self, execution_id: str) -> dict[str, bytes]:
        stored = await self._link.do(
            f"loading checkpoints of {execution_id!r}", "HGETALL", self._keys(execution_id)[1]
        )
        self.stats.loads += 1
        return {key.decode(): value for key, value in stored.items()}

    async def load_headers(self, execution_id: str) -> dict[str, bytes]:
        """HSCAN in steps, each filtered by a script: Redis keeps no order of
        a hash's fields to skip through, so every step reads `_HEADER_SCAN`
        fields on the server, but only header records are sent back. Not one
        snapshot: a header written meanwhile may be read as it was before or
        after (HSCAN returns every field present throughout at least once)."""
        key = self._keys(execution_id)[1]
        operation = f"loading checkpoint headers of {execution_id!r}"
        found: dict[str, bytes] = {}
        cursor: bytes | str = "0"
        while True:
            step = (cursor, _HEADER_SCAN)
            reply = await self._script_on(operation, "headers", key, step)
            cursor = reply[0]
            for name, value in zip(reply[1::2], reply[2::2], strict=True):
                found[name.decode()] = value
            if cursor in (b"0", "0"):
                return found

    async def list(
        self,
        *,
        status: Status | None = None,
        function: str | None = None,
        parent_id: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRecord]:
        checks.check_limit(limit)
        found: list[ExecutionRecord] = []
        filtered = status is not None or function is not None or parent_id is not None
        page = _PAGE if filtered else min(max(limit, 1), 1000)
        start = 0
        while len(found) < limit:
            ids = await self._link.do(
                "listing executions", "ZREVRANGE", self._index, start, start + page - 1
            )
            if not ids:
                break
            start += page
            wanted = [raw.decode() for raw in ids]
            if filtered:
                wanted = await self._matching(wanted, status, function, parent_id)
            found += [
                record
                for record in await self._records(wanted)
                if record is not None and checks.listed(record, status, function, parent_id)
            ]
        return found[:limit]

    async def request_cancel(self, execution_id: str) -> bool:
        found = await self._script(
            f"requesting cancellation of {execution_id!r}",
            "request_cancel",
            execution_id,
            [],
        )
        return bool(found)

    async def delete(self, execution_id: str) -> bool:
        found, _ = await self._pipeline(
            f"deleting execution {execution_id!r}",
            lambda: [
                self._command("delete", self._tag(execution_id), ()),
                ("ZREM", self._index, execution_id),
            ],
        )
        return bool(found)

    async def close(self) -> None:
        """Close this loop's connections; the store cannot be used afterwards."""
        batcher, self._batcher = self._batcher, None
        if batcher is not None and batcher.flushes and batcher.client is self._link.ready():
            await asyncio.wait(batcher.flushes)
        await self._link.close()

    # -- reading many records ---------------------------------------------------

    async def _matching(
        self, ids: _Ids, status: Status | None, function: str | None, parent_id: str | None
    ) -> _Ids:
        """The ids whose status, function and parent match, read in one round trip."""
        fields = ("status", "function", "parent_id")
        commands = [("HMGET", self._keys(i)[0], *fields) for i in ids]
        replies = await self._pipeline("listing executions", commands)
        wanted = [
            None if value is None else lua.encode_value(name, value)
            for name, value in zip(fields, (status, function, parent_id), strict=True)
        ]
        return [
            execution_id
            for execution_id, found in zip(ids, replies, strict=True)
            if found[0] is not None  # the record exists
            and all(want is None or got == want for want, got in zip(wanted, found, strict=True))
        ]

    async def _records(self, ids: _Ids) -> _Records:
        if not ids:
            return []
        commands = [("HGETALL", self._keys(i)[0]) for i in ids]
        replies = await self._pipeline("listing executions", commands)
        return [lua.decode_record(stored) for stored in replies]

    # -- group commit -----------------------------------------------------------

    async def _send(self, writes: _Writes) -> _Outcomes:
        """Send queued writes in one round trip: one script call per lease
        (its writes in order), several leases in one pipeline. Returns each
        write's outcome (None, LeaseLost...); raises only what befell them
        all (StoreUnavailable, cancellation)."""
        groups: dict[tuple[str, str, int], _Writes] = {}
        for write in writes:
            lease = write.lease
            groups.setdefault((lease.execution_id, lease.owner, lease.token), []).append(write)
        calls = [
            (
                group[0].lease,
                self._tag(group[0].lease.execution_id),
                lua.write_args(group[0].lease, [(w.puts, w.deletes) for w in group]),
            )
            for group in groups.values()
        ]
        operation = f"writing checkpoints of {writes[0].lease.execution_id!r}"
        if len(calls) == 1:
            [(lease, tag, args)] = calls
            try:
                await self._script_on(operation, "write", tag, args, lease)
            except LeaseLost as lost:
                return [lost] * len(writes)
            return [None] * len(writes)

        self._link.count("write_pipelines")
        replies = await self._link.call(
            operation,
            lambda redis: pipeline(
                redis,
                [self._command("write", tag, args) for _, tag, args in calls],
                raise_errors=False,
            ),
        )
        outcome: dict[tuple[str, str, int], BaseException | None] = {}
        for (key, _group), (lease, _tag, _args), reply in zip(
            groups.items(), calls, replies, strict=True
        ):
            outcome[key] = self._outcome(lease, reply)
        return [outcome[(w.lease.execution_id, w.lease.owner, w.lease.token)] for w in writes]

    def _outcome(self, lease: Lease, reply: object) -> BaseException | None:
        if not isinstance(reply, redis_errors.ResponseError):
            return None
        if str(reply).startswith(lua.LEASE_LOST):
            return _lease_lost(lease, str(reply))
        return self._link.unavailable(f"writing checkpoints of {lease.execution_id!r}", reply)

    def _next_batch(self, batcher: _Batcher) -> None:
        """After a batch: send the writes that queued up meanwhile, if any."""
        waiting = [w for w in batcher.queue if not w.future.done()]  # not cancelled
        batcher.queue = []
        if not waiting:
            batcher.writing = False
            return
        self._link.count("write_batches")
        task = batcher.client.loop.create_task(self._flush(batcher, waiting))
        batcher.flushes.add(task)
        task.add_done_callback(batcher.flushes.discard)

    async def _flush(self, batcher: _Batcher, writes: _Writes) -> None:
        try:
            outcomes = await self._send(writes)
        except asyncio.CancelledError:  # the loop is shutting down
            for write in (*writes, *batcher.queue):
                write.future.cancel()
            batcher.queue, batcher.writing = [], False
            raise
        except Exception as exc:
            outcomes = [self._for_caller(write, exc) for write in writes]
        for write, outcome in zip(writes, outcomes, strict=True):
            if write.future.done():  # its caller was cancelled
                continue
            if outcome is None:
                write.future.set_result(None)
            else:
                write.future.set_exception(outcome)
        self._next_batch(batcher)

    def _for_caller(self, write: _Write, exc: Exception) -> Exception:
        if isinstance(exc, StoreUnavailable):  # name this caller's execution
            unavailable = StoreUnavailable(
                self.url, f"writing checkpoints of {write.lease.execution_id!r}", exc.reason
            )
            unavailable.__cause__ = exc.__cause__
            return unavailable
        return exc

    # -- helpers ------------------------------------------------------------------

    def _tag(self, execution_id: str) -> str:
        """The hash tag of an execution's keys: the one key of every script,
        which derives the key names from it (see _redis_lua)."""
        return f"{{{self.prefix}:{execution_id}}}"

    def _keys(self, execution_id: str) -> tuple[str, str]:
        tag = self._tag(execution_id)
        return f"{tag}:record", f"{tag}:checkpoints"

    async def _script(
        self,
        operation: str,
        name: str,
        execution_id: str,
        args: Sequence[object],
        *,
        lease: Lease | None = None,
    ) -> Any:
        """Run script `name` on the execution's hash tag; a fencing failure
        raises LeaseLost for `lease`."""
        return await self._script_on(operation, name, self._tag(execution_id), args, lease)

    async def _script_on(
        self,
        operation: str,
        name: str,
        key: str,
        args: Sequence[object],
        lease: Lease | None = None,
    ) -> Any:
        return await self._link.call(
            operation, lambda redis: _run(redis, self._command(name, key, args), lease)
        )

    def _command(self, script: str, key: str, args: Sequence[object]) -> tuple[object, ...]:
        """The call of a script on one key. Built at each attempt: a reload
        of the scripts may have found a server without Functions (`Link`)."""
        return (*lua.SCRIPTS[script].head(self._link.functions), 1, key, *args)

    async def _pipeline(
        self,
        operation: str,
        commands: Sequence[Sequence[object]] | Callable[[], Sequence[Sequence[object]]],
    ) -> Any:
        """Commands in one round trip; a callable builds them at each attempt."""
        return await self._link.call(
            operation,
            lambda redis: pipeline(redis, commands() if callable(commands) else commands),
        )


async def _run(redis: aioredis.Redis, command: Sequence[object], lease: Lease | None) -> Any:
    try:
        return await execute(redis, *command)
    except redis_errors.ResponseError as exc:
        if lease is not None and str(exc).startswith(lua.LEASE_LOST):
            raise _lease_lost(lease, str(exc)) from None
        raise


def _lease_lost(lease: Lease, message: str) -> LeaseLost:
    """LeaseLost from the scripts' error reply (see _redis_lua)."""
    _, state, expires, now, holder = message.split()[:5]
    if state == "0":
        return leases.lease_lost(lease, found=False)
    owner = None if holder == "-" else bytes.fromhex(holder).decode("utf-8", "replace")
    return leases.lease_lost(
        lease, found=True, owner=owner, expires_at=float(expires), now=float(now)
    )
