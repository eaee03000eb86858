"""RedisStore's connections: one client per event loop, calls retried through
connection faults, and errors that never show a password.

Faults: connection errors, timeouts and a server still loading its data
(LOADING, after a restart) are retried with exponential backoff and jitter,
reconnecting, until `unavailable_after` seconds have passed since the first
failure; then `StoreUnavailable` says what was being done. The first failure
is logged as a warning at once. A server that neither answers nor refuses
(a host that drops packets, a stopped process) fails only after
`connect_timeout` or `command_timeout`: so the first call on a new
connection also warns if no answer came within STALL_WARNING seconds, and a
person running `resumable list` against the wrong host hears of it at once.

Why not stamina (which retries `@step` and `amap`): `Link.call` measures
`unavailable_after` from the first failure, not from the first attempt, and
caps the last wait at what is left of it; it warns once per outage, not once
per retry; and it must keep retrying when an application's tests switch
stamina off (`stamina.set_testing`), since a store that gives up at the
first reset connection would fail their runs. stamina offers none of these
as options, and redis-py's `Retry` counts attempts, not seconds.

The store only sends idempotent operations (see `RedisStore`), so a retry
of a command whose reply was lost is safe. Authentication failures are not
retried. A server that restarted has forgotten our scripts (NOSCRIPT, or
"Function not found"): they are loaded again and the call sent again.
Scripts are loaded as one Functions library (FUNCTION LOAD, Redis 7+ and
Valkey) and called by a short name; a server without Functions (or an ACL
that denies FUNCTION) gets them one by one (SCRIPT LOAD) and `functions`
turns False, so that callers build EVALSHA calls instead: callers build
their command inside `fn`, at each attempt.

Event loops: redis.asyncio connections belong to the loop that opened them,
and users call `asyncio.run` more than once per process, so a `Link` opens
one client per running loop. The client is closed when its loop shuts down
(through an async generator, which `asyncio.run` finalizes before it closes
the loop), or by `close()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff, NoBackoff

from resumable._logs import get_logger
from resumable.errors import StoreUnavailable
from resumable.stores.base import StoreStats
from resumable.stores.url import REDACTED

T = TypeVar("T")
log = get_logger()

STALL_WARNING = 2.0  # seconds without an answer on a new connection before a warning

# Errors that mean "not now": retried until unavailable_after.
TRANSIENT: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError (LOADING after a restart)
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a failover made our server a replica
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    OSError,  # includes the TimeoutError of asyncio.timeout()
)
DENIED: tuple[type[BaseException], ...] = (
    redis_errors.AuthenticationError,
    redis_errors.AuthorizationError,
    redis_errors.NoPermissionError,
)


@dataclass(eq=False, slots=True)
class LoopClient:
    """The redis client of one event loop."""

    loop: asyncio.AbstractEventLoop
    redis: aioredis.Redis
    lifetime: AsyncGenerator[None, None] | None = None


class Link:
    """The connections to one server, for one store."""

    def __init__(
        self,
        *,
        url: str,
        redis_url: str,
        connect_timeout: float,
        command_timeout: float,
        unavailable_after: float,
        library: str,
        scripts: Iterable[str],
        stats: StoreStats,
    ) -> None:
        self.url = url  # redacted, for messages
        self.command_timeout = command_timeout
        self.unavailable_after = unavailable_after
        self.stats = stats
        self.closed = False
        self._library = library
        self._scripts = tuple(scripts)
        self.functions = True  # until the server says it has none
        self._redis_url = redis_url
        # Query options of the URL win over these, as in redis-py. Retries
        # are ours (`call`), so redis-py's are off. So is its socket_timeout:
        # `call` bounds each attempt with asyncio.timeout() instead, because
        # redis-py applies socket_timeout to sends with asyncio.wait_for,
        # which on Python 3.11 starts a task per command (~20 µs, a sixth of
        # a write). redis-py drops the connection of a timed-out command.
        self._options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        self._password = self._check_options()
        self._backoff = EqualJitterBackoff(cap=1.0, base=0.02)
        self._current: LoopClient | None = None
        # The warning a new connection's first call gives if it hangs (open()).
        self._stall: asyncio.TimerHandle | None = None

    def _check_options(self) -> str | None:
        """Refuse options redis-py would only trip over at the first connection;
        return the password, to scrub it from messages."""
        try:
            kwargs: dict[str, Any] = {**self._options, **parse_url(self._redis_url)}
            connection_class = kwargs.pop("connection_class", Connection)
            connection_class(**kwargs)  # builds the object only; nothing connects
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"store URL {self.url!r}: {exc} (RedisStore's own options are prefix, "
                "max_record_bytes and unavailable_after; the others go to redis-py)"
            ) from None
        password = kwargs.get("password")
        return str(password) if password else None

    def ready(self) -> LoopClient | None:
        """This loop's client, if it has one already (no await: the hot path)."""
        client = self._current
        if client is not None and client.loop is asyncio.get_running_loop():
            return client
        return None

    async def open(self, operation: str) -> LoopClient:
        """This loop's client, created if need be. The previous loop's client,
        if any, is left to that loop's shutdown, which closes it."""
        client = self.ready()
        if client is not None:
            return client
        if self.closed:
            raise StoreUnavailable(self.url, operation, "the store was closed")
        client = LoopClient(
            asyncio.get_running_loop(), aioredis.Redis.from_url(self._redis_url, **self._options)
        )
        lifetime = self._lifetime(client)
        await anext(lifetime)  # the loop finalizes it now when asyncio.run ends
        client.lifetime = lifetime
        self._current = client
        if self._stall is None:  # cancelled by the first call that ends (`call`)
            self._stall = client.loop.call_later(STALL_WARNING, self._stalled, operation)
        return client

    def _stalled(self, operation: str) -> None:
        self._stall = None
        log.warning(
            "redis store not answering, still trying",
            store=self.url,
            operation=operation,
            waited=STALL_WARNING,
            give_up_after=self.unavailable_after,
        )

    def _answered(self) -> None:
        """A call ended (well or not): the server is not silent."""
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    async def _lifetime(self, client: LoopClient) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._current is client:
                self._current = None
            await client.redis.aclose(close_connection_pool=True)

    async def close(self) -> None:
        """Close this loop's client; the link cannot be used afterwards."""
        self.closed = True
        client, self._current = self._current, None
        # A client of another loop is closed by that loop, at its end.
        if client is not None and client.lifetime and client.loop is asyncio.get_running_loop():
            await client.lifetime.aclose()

    async def do(self, operation: str, *command: object) -> Any:
        """One command, through `call`."""
        return await self.call(operation, lambda client: execute(client, *command))

    async def call(self, operation: str, fn: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """`fn(client)`, retried with backoff through connection faults for
        up to `unavailable_after` seconds; Redis errors become StoreUnavailable.
        `operation` says what was being done, for the error message."""
        client = self.ready() or await self.open(operation)
        failures = 0
        first_failure: float | None = None
        load_scripts = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self.command_timeout):
                        if load_scripts:
                            await self._load_scripts(client.redis)
                        result = await _missing_is_noscript(fn(client.redis))
                except redis_errors.NoScriptError as exc:
                    if load_scripts:
                        raise self.unavailable(operation, exc) from exc
                    load_scripts = True
                    continue
                except DENIED as exc:
                    raise self.unavailable(operation, exc) from exc
                except TRANSIENT as exc:
                    now = time.monotonic()
                    if first_failure is None:
                        first_failure = now
                        self._answered()  # this warning says more than the stall's
                        log.warning(
                            "redis store unreachable, retrying",
                            store=self.url,
                            operation=operation,
                            error=self._reason(exc),
                            give_up_after=self.unavailable_after,
                        )
                    waited = now - first_failure
                    if waited >= self.unavailable_after:
                        raise self.unavailable(operation, exc, waited) from exc
                    delay = min(self._backoff.compute(failures), self.unavailable_after - waited)
                    failures += 1
                    self.count("retries")
                    await asyncio.sleep(delay)
                    continue
                except redis_errors.RedisError as exc:
                    raise self.unavailable(operation, exc) from exc
                if first_failure is not None:
                    log.info(
                        "redis store reachable again",
                        store=self.url,
                        operation=operation,
                        after=round(time.monotonic() - first_failure, 3),
                    )
                return result
        finally:
            if self._stall is not None:  # the first call on a new connection
                self._answered()

    async def _load_scripts(self, redis: aioredis.Redis) -> None:
        if self.functions:
            try:
                await execute(redis, "FUNCTION", "LOAD", "REPLACE", self._library)
            except redis_errors.ResponseError as exc:
                if not isinstance(exc, redis_errors.NoPermissionError) and not _unknown(exc):
                    raise
                self.functions = False
                log.info("redis store has no Functions: scripts go by SHA-1", store=self.url)
            else:
                self.count("script_loads")
                return
        await pipeline(redis, [("SCRIPT", "LOAD", s) for s in self._scripts])
        self.count("script_loads")

    def count(self, counter: str) -> None:
        extra = self.stats.extra
        extra[counter] = extra.get(counter, 0) + 1

    def _reason(self, exc: BaseException) -> str:
        reason = f"{type(exc).__name__}: {exc}"
        if self._password:  # redis-py never puts it there; be sure anyway
            reason = reason.replace(self._password, REDACTED)
        if isinstance(exc, DENIED):
            reason += " (check the user name and password of the store URL)"
        return reason

    def unavailable(
        self, operation: str, exc: BaseException, waited: float | None = None
    ) -> StoreUnavailable:
        reason = self._reason(exc)
        if waited is not None:
            reason += f" (still failing after {waited:.1f}s of retries)"
        return StoreUnavailable(self.url, operation, reason)


async def pipeline(
    client: aioredis.Redis, commands: Sequence[Sequence[object]], *, raise_errors: bool = True
) -> list[Any]:
    """Send commands in one round trip (not a transaction) and return their
    replies. A NoScriptError is always raised, so that `Link.call` loads the
    scripts and sends everything again (every command we send is idempotent);
    other error replies are raised too unless raise_errors=False. (redis-py's
    own raise_on_error would put every argument of the command in the message.)
    """
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    for reply in replies:
        if isinstance(reply, redis_errors.ResponseError) and _missing(reply):
            raise redis_errors.NoScriptError(str(reply))
    if raise_errors:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
    return replies


def _unknown(exc: redis_errors.ResponseError) -> bool:
    return str(exc).lower().startswith(("unknown command", "err unknown command"))


def _missing(exc: redis_errors.ResponseError) -> bool:
    """Is this the reply to a script or function the server does not have?"""
    text = str(exc)
    return (
        isinstance(exc, redis_errors.NoScriptError)
        or text.startswith(("Function not found", "ERR Function not found"))
        or (_unknown(exc) and "FCALL" in text)  # Redis < 7
    )


async def _missing_is_noscript(call: Awaitable[T]) -> T:
    try:
        return await call
    except redis_errors.ResponseError as exc:
        if _missing(exc) and not isinstance(exc, redis_errors.NoScriptError):
            raise redis_errors.NoScriptError(str(exc)) from exc
        raise


async def execute(client: aioredis.Redis, *args: object) -> Any:
    """One command (redis-py leaves execute_command untyped)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]
