"""The suite's Redis server and key prefixes (the server process itself is
`resumable.testing.redis_server`, shared with the benchmarks).

`redis_url` is one server for the whole session, started on first use;
`RESUMABLE_TEST_REDIS_URL` points it at a server of yours instead (the tests
only touch keys under their own prefixes and delete them at the end). Each
test gets fresh key prefixes (`fresh_prefix()`), so tests never see each
other's data. Tests that kill, restart or lock a server start a
`RedisServer` of their own.

Nothing here imports redis-py until a test uses Redis, so the memory and
SQLite tests run without it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from resumable.testing.redis_server import RedisServer

_SESSION = uuid.uuid4().hex[:8]
# Redis stores refuse to run without a key (README, "Security"): the key the
# suite's Redis tests run with (set by tests/conftest.py, inherited by their
# subprocesses).
TEST_KEY = "test-key-for-redis-0123456789abcdef"
_prefixes = iter(range(1_000_000))


def fresh_prefix() -> str:
    """A key prefix no other test uses."""
    return f"resumable-test-{_SESSION}-{next(_prefixes)}"


def with_prefix(url: str, prefix: str | None = None, **options: object) -> str:
    """`url` with ``?prefix=`` (a fresh one by default) and other query options."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("prefix", prefix or fresh_prefix())]
    query += [(name, str(value)) for name, value in options.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture(scope="session", name="redis_url")
def _redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's Redis server URL (started on first use)."""
    external = os.environ.get("RESUMABLE_TEST_REDIS_URL")
    if external:
        yield external
        _delete_test_keys(external)
        return
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def _delete_test_keys(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    with contextlib.closing(client):
        for key in client.scan_iter(match=f"*resumable-test-{_SESSION}-*", count=1000):
            client.delete(key)
