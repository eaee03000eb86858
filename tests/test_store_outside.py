"""A store written outside the package proves itself with the shipped
`StoreContract`, registered by scheme as a third party would register it.

`WrappedStore` delegates every method of the protocol to a `MemoryStore`
and counts the calls, so the tests can see that the contract ran through it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Collection, Mapping
from typing import ClassVar

import pytest

from resumable.stores import (
    DEFAULT_MAX_RECORD_BYTES,
    ExecutionRecord,
    ExecutionUpdate,
    Lease,
    MemoryStore,
    Status,
    Store,
    StoreStats,
    StoreURL,
    open_store,
    register_store,
)
from resumable.stores.base import KeyScope
from resumable.testing.store_contract import StoreContract, make_record


class WrappedStore:
    """Every Store method, delegated to a MemoryStore it wraps."""

    key_scope: ClassVar[KeyScope] = "process"

    def __init__(self, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self._inner = MemoryStore(max_record_bytes=max_record_bytes)
        self.url = "wrapped://"
        self.calls: Counter[str] = Counter()

    @classmethod
    def from_url(cls, parsed: StoreURL) -> WrappedStore:
        parsed.refuse_unknown(("max_record_bytes",))
        return cls(max_record_bytes=parsed.number("max_record_bytes", int, 4096))

    @property
    def stats(self) -> StoreStats:
        return self._inner.stats

    @property
    def max_record_bytes(self) -> int:
        return self._inner.max_record_bytes

    async def create(self, record: ExecutionRecord, owner: str, ttl: float) -> Lease | None:
        self.calls["create"] += 1
        return await self._inner.create(record, owner, ttl)

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        self.calls["get"] += 1
        return await self._inner.get(execution_id)

    async def acquire(
        self, execution_id: str, owner: str, ttl: float, *, steal_token: int | None = None
    ) -> Lease:
        self.calls["acquire"] += 1
        return await self._inner.acquire(execution_id, owner, ttl, steal_token=steal_token)

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        self.calls["renew"] += 1
        return await self._inner.renew(lease, ttl)

    async def release(self, lease: Lease) -> None:
        self.calls["release"] += 1
        await self._inner.release(lease)

    async def write(
        self, lease: Lease, puts: Mapping[str, bytes], deletes: Collection[str] = ()
    ) -> None:
        self.calls["write"] += 1
        await self._inner.write(lease, puts, deletes)

    async def update(self, lease: Lease, update: ExecutionUpdate) -> ExecutionRecord:
        self.calls["update"] += 1
        return await self._inner.update(lease, update)

    async def load(self, execution_id: str) -> dict[str, bytes]:
        self.calls["load"] += 1
        return await self._inner.load(execution_id)

    async def load_headers(self, execution_id: str) -> dict[str, bytes]:
        self.calls["load_headers"] += 1
        return await self._inner.load_headers(execution_id)

    async def list(
        self,
        *,
        status: Status | None = None,
        function: str | None = None,
        parent_id: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRecord]:
        self.calls["list"] += 1
        return await self._inner.list(
            status=status, function=function, parent_id=parent_id, limit=limit
        )

    async def request_cancel(self, execution_id: str) -> bool:
        self.calls["request_cancel"] += 1
        return await self._inner.request_cancel(execution_id)

    async def cancel_requested(self, execution_id: str) -> bool:
        self.calls["cancel_requested"] += 1
        return await self._inner.cancel_requested(execution_id)

    async def delete(self, execution_id: str) -> bool:
        self.calls["delete"] += 1
        return await self._inner.delete(execution_id)

    async def close(self) -> None:
        self.calls["close"] += 1
        await self._inner.close()


register_store("wrapped", WrappedStore)


class TestWrappedStore(StoreContract):
    """The wrapping store, opened by its scheme, passes the shipped contract."""

    @pytest.fixture(name="store")
    async def _store(self) -> AsyncIterator[Store]:
        store = open_store("wrapped://?max_record_bytes=2048")
        yield store
        await store.close()


class TestRegistration:
    """The scheme opens the wrapping store, and the store's work goes through it."""

    async def test_open_store_opens_the_wrapper(self) -> None:
        store = open_store("wrapped://")
        assert isinstance(store, WrappedStore)
        assert store.max_record_bytes == 4096
        lease = await store.create(make_record("e1"), "owner-a", 30.0)
        assert lease is not None
        await store.write(lease, {"k": b"v"})
        assert await store.load("e1") == {"k": b"v"}
        assert store.calls == Counter(create=1, write=1, load=1)

    def test_its_options_are_checked(self) -> None:
        with pytest.raises(ValueError, match=r"unknown option\(s\) colour"):
            open_store("wrapped://?colour=blue")

    def test_registering_again_with_another_factory_is_refused(self) -> None:
        register_store("wrapped", WrappedStore)  # the same one: a no-op
        with pytest.raises(ValueError, match="registered already"):
            register_store("wrapped", MemoryStore)
