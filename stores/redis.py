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
paging through the index, reading only the status and function fields of
each page before the records that match, like SQLite's scan of its table.

Group commit: an awaited Redis write costs ~100-200 µs, a pipelined one
~20 µs (DESIGN §11). `write` sends at once when no write of this store is in
flight; writes that arrive meanwhile queue up and go out together when it
returns: those of one lease merged into one script call, several leases in
one pipeline. Each caller's await returns once the reply covering its own
write is in, with its own outcome (a fencing failure reaches the callers of
that lease only). Only one batch is in flight at a time, which also keeps
retried writes in order.

Faults: connection errors, timeouts and a server that is loading its data
are retried with exponential backoff and jitter, reconnecting, until
`unavailable_after` seconds have passed since the first failure; then
`StoreUnavailable` says what was being done. Retrying is safe because every
operation is idempotent: writes set and delete keys, and `create`/`acquire`
carry a nonce, so a retry of one whose reply was lost finds its own lease
instead of a lock. Authentication failures are not retried.

Event loops: redis.asyncio connections belong to the loop that opened them,
and users call `asyncio.run` more than once per process, so the store opens
one client per running loop. The client is closed when its loop shuts down
(through an async generator that `asyncio.run` finalizes), or by `close()`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
import structlog
from redis import exceptions as redis_errors
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff, NoBackoff

from resumable.errors import ExecutionNotFound, LeaseLost, StoreUnavailable
from resumable.stores import _common
from resumable.stores import _redis_lua as lua
from resumable.stores.base import (
    DEFAULT_MAX_RECORD_BYTES,
    ExecutionRecord,
    ExecutionUpdate,
    Lease,
    Status,
    StoreStats,
)
from resumable.stores.url import REDACTED, redact_url

__all__ = ["DEFAULT_PREFIX", "RedisStore"]

T = TypeVar("T")
log = structlog.get_logger("resumable")

DEFAULT_PREFIX = "resumable"
# Query options of the store URL that are ours; the rest go to redis-py.
_OWN_OPTIONS = ("max_record_bytes", "prefix", "unavailable_after")
# Ids read per index page when filtering (one pipelined round trip each).
_PAGE = 500
# Errors that mean "not now": retried until unavailable_after.
_TRANSIENT: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError (LOADING after a restart)
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a failover made our server a replica
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    OSError,
)
_DENIED: tuple[type[BaseException], ...] = (
    redis_errors.AuthenticationError,
    redis_errors.AuthorizationError,
    redis_errors.NoPermissionError,
)


@dataclass(eq=False, slots=True)
class _Write:
    lease: Lease
    puts: Mapping[str, bytes]
    deletes: list[str]
    future: asyncio.Future[None] | None


# Inside RedisStore, `list` is the method: annotations use these names.
_Ids = list[str]
_Writes = list[_Write]
_Outcomes = list[BaseException | None]
_Records = list[ExecutionRecord | None]


@dataclass(eq=False, slots=True)
class _Client:
    """The redis client of one event loop, and its group-commit queue."""

    loop: asyncio.AbstractEventLoop
    redis: aioredis.Redis
    writing: bool = False
    queue: _Writes = field(default_factory=list)
    flushes: set[asyncio.Task[None]] = field(default_factory=set)
    lifetime: AsyncGenerator[None, None] | None = None


class RedisStore:
    """A Store in Redis (or Valkey, or any server speaking its protocol).

    `url` is ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://``
    (TLS), with optional query options: ``prefix`` (namespace of the keys,
    default ``resumable``), ``max_record_bytes``, ``unavailable_after``, and
    any option redis-py understands (``socket_timeout``, ``ssl_cert_reqs``...).
    Several applications can share a server with different prefixes. Needs
    Redis 5 or later (scripts that call TIME before writing).
    """

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
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("redis", "rediss"):
            raise ValueError(f"RedisStore needs a redis:// or rediss:// URL, got {self.url!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        own = {name: value for name, value in query if name in _OWN_OPTIONS}
        redis_url = urlunsplit(
            parts._replace(query=urlencode([(n, v) for n, v in query if n not in _OWN_OPTIONS]))
        )
        if "prefix" in own:
            if prefix not in (DEFAULT_PREFIX, own["prefix"]):
                raise ValueError(
                    f"prefix={prefix!r} and the URL's ?prefix={own['prefix']!r} disagree"
                )
            prefix = own["prefix"]
        max_record_bytes = int(self._option(own, "max_record_bytes", max_record_bytes))
        unavailable_after = self._option(own, "unavailable_after", unavailable_after)
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix={prefix!r}: expected a non-empty name without braces")
        _common.check_max_record_bytes(max_record_bytes)
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
        self.command_timeout = command_timeout
        self.stats = StoreStats()
        # Query options win over these, as in redis-py. Retries are ours
        # (`_call`), so redis-py's own are off. So is its socket_timeout:
        # `_call` bounds each attempt with asyncio.timeout() instead, because
        # redis-py applies socket_timeout to sends with asyncio.wait_for,
        # which on Python 3.11 starts a task per command (~20 µs, a sixth of
        # a write). A timed-out command's connection is dropped by redis-py.
        self._options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        self._redis_url = redis_url
        self._password = self._check_connection_options(redis_url)
        self._index = f"{prefix}:index"
        self._backoff = EqualJitterBackoff(cap=1.0, base=0.02)
        self._current: _Client | None = None
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """The store a URL names, options included (what `open_store` calls)."""
        return cls(url)

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    def _option(self, own: Mapping[str, str], name: str, default: float) -> float:
        if name not in own:
            return default
        try:
            return float(own[name])
        except ValueError:
            raise ValueError(
                f"store URL {self.url!r}: {name}={own[name]!r} is not a number"
            ) from None

    def _check_connection_options(self, redis_url: str) -> str | None:
        """Refuse options redis-py would only trip over at the first connection."""
        try:
            kwargs: dict[str, Any] = {**self._options, **parse_url(redis_url)}
            connection_class = kwargs.pop("connection_class", Connection)
            connection_class(**kwargs)  # builds the object only; nothing connects
        except (TypeError, ValueError) as exc:
            raise ValueError(f"store URL {self.url!r}: {exc}") from None
        password = kwargs.get("password")
        return str(password) if password else None

    # -- the Store protocol ---------------------------------------------------

    async def create(self, record: ExecutionRecord, owner: str, ttl: float) -> Lease | None:
        _common.check_ttl(ttl)
        if len(record.args) > self.max_record_bytes:
            raise _common.record_too_big(record.id, "args", len(record.args), self.max_record_bytes)
        if not record.created_at:
            record = record.replace(created_at=time.time())
        keys = self._keys(record.id)
        token = record.lease_token + 1
        args = [repr(float(ttl)), token, uuid.uuid4().hex, owner, *lua.record_fields(record)]
        score = repr(record.created_at)

        commands = [
            ("ZADD", self._index, "NX", score, record.id),
            ("EVALSHA", lua.SCRIPTS["create"].sha, 2, *keys, *args),
        ]
        added, reply = await self._call(
            f"creating execution {record.id!r}", lambda client: _pipeline(client, commands)
        )
        if reply[0] == 0:
            return None
        if not added:  # an id left in the index by a crash, with an old score
            await self._do(
                f"creating execution {record.id!r}", "ZADD", self._index, "XX", score, record.id
            )
        return Lease(record.id, owner, token, float(reply[1]))

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        stored = await self._do(
            f"reading execution {execution_id!r}", "HGETALL", self._keys(execution_id)[0]
        )
        return lua.decode_record(stored)

    async def acquire(
        self, execution_id: str, owner: str, ttl: float, *, steal_token: int | None = None
    ) -> Lease:
        _common.check_ttl(ttl)
        steal = "" if steal_token is None else str(steal_token)
        args = [owner, repr(float(ttl)), steal, uuid.uuid4().hex]
        reply = await self._script(
            f"acquiring the lease of {execution_id!r}", "acquire", execution_id, args, records=1
        )
        if reply[0] == -1:
            raise ExecutionNotFound(execution_id, self.url)
        if reply[0] == 0:
            holder = reply[1].decode("utf-8", "replace")
            raise _common.locked(execution_id, holder, float(reply[2]), float(reply[3]))
        return Lease(execution_id, owner, int(reply[1]), float(reply[2]))

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        _common.check_ttl(ttl)
        expires = await self._script(
            f"renewing the lease of {lease.execution_id!r}",
            "renew",
            lease.execution_id,
            [lease.owner, lease.token, repr(float(ttl))],
            lease=lease,
            records=1,
        )
        return Lease(lease.execution_id, lease.owner, lease.token, float(expires))

    async def release(self, lease: Lease) -> None:
        await self._script(
            f"releasing the lease of {lease.execution_id!r}",
            "release",
            lease.execution_id,
            [lease.owner, lease.token],
            lease=lease,
            records=1,
        )

    async def write(
        self, lease: Lease, puts: Mapping[str, bytes], deletes: Collection[str] = ()
    ) -> None:
        written = _common.check_puts(lease.execution_id, puts, self.max_record_bytes)
        client = self._ready() or await self._open("writing checkpoints")
        if client.writing:  # one batch is in flight: join the next one
            future: asyncio.Future[None] = client.loop.create_future()
            client.queue.append(_Write(lease, puts, list(deletes), future))
            await future
        else:
            client.writing = True
            try:
                [outcome] = await self._send(client, [_Write(lease, puts, list(deletes), None)])
            finally:
                self._next_batch(client)
            if outcome is not None:
                raise outcome
        stats = self.stats
        stats.writes += 1
        stats.records_written += len(puts)
        stats.bytes_written += written

    async def update(self, lease: Lease, update: ExecutionUpdate) -> ExecutionRecord:
        _common.check_update(lease.execution_id, update, self.max_record_bytes)
        fields = lua.encode_fields(_common.update_changes(update))
        clear = "1" if update.clear_checkpoints else "0"
        stored = await self._script(
            f"updating execution {lease.execution_id!r}",
            "update",
            lease.execution_id,
            [lease.owner, lease.token, clear, *fields],
            lease=lease,
        )
        record = lua.decode_record(lua.pairs(stored))
        assert record is not None  # the fence found it
        return record

    async def load(self, execution_id: str) -> dict[str, bytes]:
        stored = await self._do(
            f"loading checkpoints of {execution_id!r}", "HGETALL", self._keys(execution_id)[1]
        )
        self.stats.loads += 1
        return {key.decode(): value for key, value in stored.items()}

    async def list(
        self, *, status: Status | None = None, function: str | None = None, limit: int = 100
    ) -> list[ExecutionRecord]:
        _common.check_limit(limit)
        found: list[ExecutionRecord] = []
        filtered = status is not None or function is not None
        page = _PAGE if filtered else min(max(limit, 1), 1000)
        start = 0
        while len(found) < limit:
            ids = await self._do(
                "listing executions", "ZREVRANGE", self._index, start, start + page - 1
            )
            if not ids:
                break
            start += page
            wanted = [raw.decode() for raw in ids]
            if filtered:
                wanted = await self._matching(wanted, status, function)
            found += [
                record
                for record in await self._records(wanted)
                if record is not None
                and (status is None or record.status == status)
                and (function is None or record.function == function)
            ]
        return found[:limit]

    async def request_cancel(self, execution_id: str) -> bool:
        found = await self._script(
            f"requesting cancellation of {execution_id!r}",
            "request_cancel",
            execution_id,
            [],
            records=1,
        )
        return bool(found)

    async def delete(self, execution_id: str) -> bool:
        commands = [
            ("EVALSHA", lua.SCRIPTS["delete"].sha, 2, *self._keys(execution_id)),
            ("ZREM", self._index, execution_id),
        ]
        found, _ = await self._call(
            f"deleting execution {execution_id!r}", lambda client: _pipeline(client, commands)
        )
        return bool(found)

    async def close(self) -> None:
        """Close this loop's connections; the store cannot be used afterwards."""
        self._closed = True
        client, self._current = self._current, None
        if client is None or client.lifetime is None:
            return
        if client.loop is asyncio.get_running_loop():
            if client.flushes:
                await asyncio.wait(client.flushes)
            await client.lifetime.aclose()
        # else: the client belongs to another loop, which closes it at its end

    # -- reading many records ---------------------------------------------------

    async def _matching(self, ids: _Ids, status: Status | None, function: str | None) -> _Ids:
        """The ids whose status and function match, read in one round trip."""
        commands = [("HMGET", self._keys(i)[0], "status", "function") for i in ids]
        replies = await self._call("listing executions", lambda client: _pipeline(client, commands))
        wanted_status = None if status is None else status.encode()
        wanted_function = None if function is None else function.encode()
        return [
            execution_id
            for execution_id, (found_status, found_function) in zip(ids, replies, strict=True)
            if found_status is not None
            and (wanted_status is None or found_status == wanted_status)
            and (wanted_function is None or found_function == wanted_function)
        ]

    async def _records(self, ids: _Ids) -> _Records:
        if not ids:
            return []
        commands = [("HGETALL", self._keys(i)[0]) for i in ids]
        replies = await self._call("listing executions", lambda client: _pipeline(client, commands))
        return [lua.decode_record(stored) for stored in replies]

    # -- group commit -----------------------------------------------------------

    async def _send(self, client: _Client, writes: _Writes) -> _Outcomes:
        """Send writes in one round trip; each one's outcome, in order.

        Raises only what befell them all (StoreUnavailable, cancellation).
        """
        groups: dict[tuple[str, str, int], _Writes] = {}
        for write in writes:
            lease = write.lease
            groups.setdefault((lease.execution_id, lease.owner, lease.token), []).append(write)
        sha = lua.SCRIPTS["write"].sha
        commands = [
            (
                group[0].lease,
                (
                    "EVALSHA",
                    sha,
                    2,
                    *self._keys(group[0].lease.execution_id),
                    *lua.write_args(group[0].lease, [(w.puts, w.deletes) for w in group]),
                ),
            )
            for group in groups.values()
        ]
        operation = f"writing checkpoints of {writes[0].lease.execution_id!r}"
        if len(commands) == 1:
            [(lease, command)] = commands
            try:
                await self._call(operation, lambda c: self._eval(c, command, lease))
            except LeaseLost as lost:
                return [lost] * len(writes)
            return [None] * len(writes)

        self._count("write_pipelines")
        replies = await self._call(
            operation,
            lambda client: _pipeline(client, [c for _, c in commands], raise_errors=False),
        )
        outcome: dict[tuple[str, str, int], BaseException | None] = {}
        for (key, _group), (lease, _command), reply in zip(
            groups.items(), commands, replies, strict=True
        ):
            outcome[key] = self._outcome(lease, reply, operation)
        return [outcome[(w.lease.execution_id, w.lease.owner, w.lease.token)] for w in writes]

    def _outcome(self, lease: Lease, reply: object, operation: str) -> BaseException | None:
        if not isinstance(reply, redis_errors.ResponseError):
            return None
        if str(reply).startswith(lua.LEASE_LOST):
            return _lease_lost(lease, str(reply))
        return self._unavailable(operation, reply)

    def _next_batch(self, client: _Client) -> None:
        """After a batch: send the writes that queued up meanwhile, if any."""
        waiting = [w for w in client.queue if w.future is not None and not w.future.done()]
        client.queue = []
        if not waiting:
            client.writing = False
            return
        self._count("write_batches")
        task = client.loop.create_task(self._flush(client, waiting))
        client.flushes.add(task)
        task.add_done_callback(client.flushes.discard)

    async def _flush(self, client: _Client, writes: _Writes) -> None:
        try:
            outcomes = await self._send(client, writes)
        except asyncio.CancelledError:  # the loop is shutting down
            for write in (*writes, *client.queue):
                if write.future is not None:
                    write.future.cancel()
            client.queue, client.writing = [], False
            raise
        except BaseException as exc:
            for write in writes:
                self._settle(write, self._for_caller(write, exc))
        else:
            for write, outcome in zip(writes, outcomes, strict=True):
                self._settle(write, outcome)
        self._next_batch(client)

    @staticmethod
    def _settle(write: _Write, outcome: BaseException | None) -> None:
        future = write.future
        if future is None or future.done():
            return
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)

    def _for_caller(self, write: _Write, exc: BaseException) -> BaseException:
        if isinstance(exc, StoreUnavailable):  # name this caller's execution
            unavailable = StoreUnavailable(
                self.url, f"writing checkpoints of {write.lease.execution_id!r}", exc.reason
            )
            unavailable.__cause__ = exc.__cause__
            return unavailable
        return exc

    # -- talking to Redis -------------------------------------------------------

    def _keys(self, execution_id: str) -> tuple[str, str]:
        tag = f"{{{self.prefix}:{execution_id}}}"
        return f"{tag}:record", f"{tag}:checkpoints"

    async def _do(self, operation: str, *command: object) -> Any:
        """One plain command, through `_call`."""
        return await self._call(operation, lambda client: _command(client, *command))

    async def _script(
        self,
        operation: str,
        name: str,
        execution_id: str,
        args: Sequence[object],
        *,
        lease: Lease | None = None,
        records: int = 2,
    ) -> Any:
        """Run script `name` on the execution's keys (record, and checkpoints
        unless records=1); a fencing failure raises LeaseLost for `lease`."""
        keys = self._keys(execution_id)[:records]
        command = ("EVALSHA", lua.SCRIPTS[name].sha, len(keys), *keys, *args)
        return await self._call(operation, lambda client: self._eval(client, command, lease))

    @staticmethod
    async def _eval(client: aioredis.Redis, command: Sequence[object], lease: Lease | None) -> Any:
        try:
            return await _command(client, *command)
        except redis_errors.ResponseError as exc:
            if lease is not None and str(exc).startswith(lua.LEASE_LOST):
                raise _lease_lost(lease, str(exc)) from None
            raise

    async def _call(self, operation: str, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """`fn(client)`, retried with backoff through connection faults for
        up to `unavailable_after` seconds; Redis errors become StoreUnavailable."""
        client = self._ready() or await self._open(operation)
        failures = 0
        first_failure: float | None = None
        load_scripts = False
        while True:
            try:
                async with asyncio.timeout(self.command_timeout):
                    if load_scripts:
                        await self._load_scripts(client.redis)
                    result = await fn(client.redis)
            except redis_errors.NoScriptError as exc:
                # A restarted (or flushed) server has forgotten our scripts.
                if load_scripts:
                    raise self._unavailable(operation, exc) from exc
                load_scripts = True
                continue
            except _DENIED as exc:
                raise self._unavailable(operation, exc) from exc
            except _TRANSIENT as exc:
                now = time.monotonic()
                if first_failure is None:
                    first_failure = now
                    log.warning(
                        "redis store unreachable, retrying",
                        store=self.url,
                        operation=operation,
                        error=self._reason(exc),
                        give_up_after=self.unavailable_after,
                    )
                waited = now - first_failure
                if waited >= self.unavailable_after:
                    raise self._unavailable(operation, exc, waited) from exc
                delay = min(self._backoff.compute(failures), self.unavailable_after - waited)
                failures += 1
                self._count("retries")
                await asyncio.sleep(delay)
                continue
            except redis_errors.RedisError as exc:
                raise self._unavailable(operation, exc) from exc
            if first_failure is not None:
                log.info(
                    "redis store reachable again",
                    store=self.url,
                    operation=operation,
                    after=round(time.monotonic() - first_failure, 3),
                )
            return result

    async def _load_scripts(self, client: aioredis.Redis) -> None:
        await _pipeline(client, [("SCRIPT", "LOAD", s.source) for s in lua.SCRIPTS.values()])
        self._count("script_loads")

    def _ready(self) -> _Client | None:
        client = self._current
        if client is not None and client.loop is asyncio.get_running_loop():
            return client
        return None

    async def _open(self, operation: str) -> _Client:
        """This event loop's client (the previous loop's, if any, is left to
        that loop's shutdown, which closes it)."""
        if self._closed:
            raise StoreUnavailable(self.url, operation, "the store was closed")
        loop = asyncio.get_running_loop()
        client = _Client(loop, aioredis.Redis.from_url(self._redis_url, **self._options))
        lifetime = self._lifetime(client)
        await anext(lifetime)  # the loop now finalizes it when asyncio.run ends
        client.lifetime = lifetime
        self._current = client
        return client

    async def _lifetime(self, client: _Client) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._current is client:
                self._current = None
            await client.redis.aclose(close_connection_pool=True)

    def _count(self, counter: str) -> None:
        extra = self.stats.extra
        extra[counter] = extra.get(counter, 0) + 1

    def _reason(self, exc: BaseException) -> str:
        reason = f"{type(exc).__name__}: {exc}"
        if self._password:  # redis-py never puts it there; be sure anyway
            reason = reason.replace(self._password, REDACTED)
        if isinstance(exc, _DENIED):
            reason += " (check the user name and password of the store URL)"
        return reason

    def _unavailable(
        self, operation: str, exc: BaseException, waited: float | None = None
    ) -> StoreUnavailable:
        reason = self._reason(exc)
        if waited is not None:
            reason += f" (still failing after {waited:.1f}s of retries)"
        return StoreUnavailable(self.url, operation, reason)


def _lease_lost(lease: Lease, message: str) -> LeaseLost:
    """LeaseLost from the scripts' error reply (see _redis_lua)."""
    _, state, expires, now, holder = message.split()[:5]
    if state == "0":
        return _common.lease_lost(lease, found=False)
    owner = None if holder == "-" else bytes.fromhex(holder).decode("utf-8", "replace")
    return _common.lease_lost(
        lease, found=True, owner=owner, expires_at=float(expires), now=float(now)
    )


async def _pipeline(
    client: aioredis.Redis, commands: Sequence[Sequence[object]], *, raise_errors: bool = True
) -> list[Any]:
    """Send commands in one round trip (not a transaction) and return their
    replies. A NoScriptError is always raised, so that `_call` loads the
    scripts and sends everything again (every command here is idempotent);
    other error replies are raised too unless raise_errors=False. (redis-py's
    own raise_on_error would add every argument of the command to the message.)
    """
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, redis_errors.NoScriptError):
            raise reply
    if raise_errors:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies


async def _command(client: aioredis.Redis, *args: object) -> Any:
    """One command (redis-py leaves execute_command untyped)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]
