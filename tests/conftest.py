"""Shared fixtures: a real store of every kind, and execution records.

`store` runs a test once per entry of STORES: a factory that gets the pytest
request (for fixtures such as a server URL), a fresh directory, and options
a test sets. The shipped contract suite runs each of them through
`StoreContract` (tests/test_store_contract.py). The Redis fixtures import
redis-py only when a test uses them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from support.redis_server import (  # noqa: F401 (_redis_url: a fixture)
    TEST_KEY,
    _redis_url,
    fresh_prefix,
    with_prefix,
)

from resumable.stores import MemoryStore, SQLiteStore, Store
from resumable.stores.base import ExecutionRecord
from resumable.testing.store_contract import make_record

# The carry audit is on in the whole suite, subprocesses included: every
# checkpoint of every test checks that no uncarried local changed.
os.environ.setdefault("RESUMABLE_AUDIT_CARRY", "1")
# The analysis cache of the suite (subprocesses included) lives and dies with
# it: tests never read entries another run left in the user's cache directory.
if "RESUMABLE_CACHE_DIR" not in os.environ:
    os.environ["RESUMABLE_CACHE_DIR"] = tempfile.mkdtemp(prefix="resumable-test-cache-")
    atexit.register(shutil.rmtree, os.environ["RESUMABLE_CACHE_DIR"], ignore_errors=True)

# The per-user key that signs SQLite stores when no key is configured is made
# in a directory of the suite's own (subprocesses inherit it), never in the
# real home directory.
# XDG_CONFIG_HOME too, for a subprocess whose environment drops RESUMABLE_*.
if "RESUMABLE_KEY_DIR" not in os.environ:
    os.environ["RESUMABLE_KEY_DIR"] = tempfile.mkdtemp(prefix="resumable-test-keys-")
    atexit.register(shutil.rmtree, os.environ["RESUMABLE_KEY_DIR"], ignore_errors=True)
    os.environ["XDG_CONFIG_HOME"] = os.path.join(os.environ["RESUMABLE_KEY_DIR"], "xdg-config")

StoreFactory = Callable[[pytest.FixtureRequest, Path, dict[str, Any]], Store]


def _redis_store(request: pytest.FixtureRequest, tmp_path: Path, options: dict[str, Any]) -> Store:
    """One server for the session (tests/support/redis_server.py), a fresh key
    prefix per store. redis-py is imported here, when a test uses Redis: the
    other tests run without it (tests/test_without_redis.py)."""
    from resumable.stores.redis import RedisStore

    return RedisStore(request.getfixturevalue("redis_url"), prefix=fresh_prefix(), **options)


STORES: dict[str, StoreFactory] = {
    "memory": lambda request, tmp_path, options: MemoryStore(**options),
    "sqlite": lambda request, tmp_path, options: SQLiteStore(tmp_path / "state.db", **options),
    "redis": _redis_store,
}

# Redis stores refuse to run without a key (README, "Security"), so every test
# that uses Redis runs with one, as every deployment must (tests that start a
# server of their own set it too). SQLite and memory tests run with none: they
# exercise the defaults (the per-user key, unsigned).


@pytest.fixture(autouse=True)
def _key_for_redis(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    uses_redis = "redis_url" in request.fixturenames or "redis" in params
    if uses_redis and not os.environ.get("RESUMABLE_SECRET_KEY"):
        monkeypatch.setenv("RESUMABLE_SECRET_KEY", TEST_KEY)


@pytest.fixture(name="make_store", params=sorted(STORES))
async def _make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., Store]]:
    """Opens stores of one kind (the parameter) with options; closes them all after."""
    opened: list[Store] = []
    factory = STORES[request.param]

    def make(**options: Any) -> Store:
        store = factory(request, tmp_path, options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture(name="store")
def _store(make_store: Callable[..., Store]) -> Store:
    """A fresh, empty store of each kind."""
    return make_store()


@pytest.fixture(name="make_record")
def _make_record() -> Callable[..., ExecutionRecord]:
    """The `make_record` factory, for tests that build executions."""
    return make_record


@pytest.fixture(name="store_url", params=["sqlite", "redis"])
def _store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL that every process of a test shares, for tests with real
    subprocesses: a SQLite file, or fresh keys on the session's Redis server."""
    if request.param == "redis":
        return with_prefix(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(name="sqlite")
async def _sqlite(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """The SQLite file a command-line test's subprocesses read, opened here
    to create executions in it."""
    store = SQLiteStore(tmp_path / "state.db")
    yield store
    await store.close()


@pytest.fixture(name="url")
def _url(sqlite: SQLiteStore) -> str:
    """The URL of the `sqlite` fixture's file, for `--store`."""
    return sqlite.url
