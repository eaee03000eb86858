"""The shipped Store contract (resumable.testing.store_contract), run against
each of the project's stores: exactly the class users run theirs through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import STORES

from resumable.stores import Store
from resumable.testing.store_contract import StoreContract

# A small record size cap keeps the contract's size cap tests fast; every
# other test of the contract writes far less.
LIMIT = 4096


async def _opened(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Store]:
    store = STORES[kind](request, tmp_path, {"max_record_bytes": LIMIT})
    yield store
    await store.close()


class TestMemoryStore(StoreContract):
    """MemoryStore passes the contract."""

    @pytest.fixture(name="store")
    async def _store(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
        async for store in _opened("memory", request, tmp_path):
            yield store


class TestSQLiteStore(StoreContract):
    """SQLiteStore, on a real file, passes the contract."""

    @pytest.fixture(name="store")
    async def _store(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
        async for store in _opened("sqlite", request, tmp_path):
            yield store


class TestRedisStore(StoreContract):
    """RedisStore, on the session's real server, passes the contract."""

    @pytest.fixture(name="store")
    async def _store(
        self, request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
    ) -> AsyncIterator[Store]:
        async for store in _opened("redis", request, tmp_path):
            yield store
