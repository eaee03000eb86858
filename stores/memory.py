"""`MemoryStore`: the Store contract in plain dicts, for tests and notebooks.

Nothing survives the process, and nothing is shared with another process or
another `MemoryStore`. Every method runs without yielding to the event loop
(there is no I/O to wait for), so each one is atomic with respect to other
tasks: the contract's atomicity comes for free. `write` is the hot path of
every checkpoint and is kept to dict operations (~1 µs).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import ClassVar

from resumable.errors import ExecutionNotFound
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
from resumable.stores.url import StoreURL

__all__ = ["MemoryStore"]


class MemoryStore:
    """In-process store: `url` is ``memory://``."""

    key_scope: ClassVar[KeyScope] = "process"
    url: str
    stats: StoreStats

    def __init__(self, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        checks.check_max_record_bytes(max_record_bytes)
        self.url = "memory://"
        self.stats = StoreStats()
        self.max_record_bytes = max_record_bytes
        self._records: dict[str, ExecutionRecord] = {}
        self._checkpoints: dict[str, dict[str, bytes]] = {}

    @classmethod
    def from_url(cls, parsed: StoreURL) -> MemoryStore:
        """The store ``memory://[?max_record_bytes=N]`` names (a new one each time)."""
        parsed.refuse_unknown(("max_record_bytes",))
        return cls(
            max_record_bytes=parsed.number("max_record_bytes", int, DEFAULT_MAX_RECORD_BYTES)
        )

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._records)} executions)"

    async def create(self, record: ExecutionRecord, owner: str, ttl: float) -> Lease | None:
        checks.check_create(record, ttl, self.max_record_bytes)
        if record.id in self._records:
            return None
        now = time.time()
        lease = Lease(record.id, owner, leases.next_token(record.lease_token), now + ttl)
        self._records[record.id] = record.replace(
            created_at=record.created_at or now,
            updated_at=now,
            owner=owner,
            lease_token=lease.token,
            lease_expires_at=lease.expires_at,
        )
        self._checkpoints[record.id] = {}
        return lease

    async def get(self, execution_id: str) -> ExecutionRecord | None:
        return self._records.get(execution_id)

    async def acquire(
        self, execution_id: str, owner: str, ttl: float, *, steal_token: int | None = None
    ) -> Lease:
        leases.check_ttl(ttl)
        record = self._records.get(execution_id)
        if record is None:
            raise ExecutionNotFound(execution_id, self.url)
        now = time.time()
        if not leases.may_acquire(
            record.owner, record.lease_expires_at, record.lease_token, now, steal_token
        ):
            raise leases.locked(execution_id, record.owner, record.lease_expires_at, now)
        lease = Lease(execution_id, owner, leases.next_token(record.lease_token), now + ttl)
        self._records[execution_id] = record.replace(
            owner=owner, lease_token=lease.token, lease_expires_at=lease.expires_at, updated_at=now
        )
        return lease

    async def renew(self, lease: Lease, ttl: float) -> Lease:
        leases.check_ttl(ttl)
        record = self._fenced(lease)
        now = time.time()
        renewed = Lease(lease.execution_id, lease.owner, lease.token, now + ttl)
        self._records[lease.execution_id] = record.replace(
            lease_expires_at=renewed.expires_at, updated_at=now
        )
        return renewed

    async def release(self, lease: Lease) -> None:
        record = self._records.get(lease.execution_id)
        if record is not None and record.lease_token == lease.token and record.owner is None:
            return  # already released by this lease: releasing is idempotent
        record = self._fenced(lease)
        self._records[lease.execution_id] = record.replace(
            owner=None, lease_expires_at=0.0, updated_at=time.time()
        )

    async def write(
        self, lease: Lease, puts: Mapping[str, bytes], deletes: Collection[str] = ()
    ) -> None:
        # The hot path: the fence check is inlined rather than `_fenced()`.
        execution_id = lease.execution_id
        record = self._records.get(execution_id)
        if record is None or record.lease_token != lease.token or record.owner != lease.owner:
            leases.fenced(lease, record, time.time())  # raises LeaseLost
        written = checks.check_puts(execution_id, puts, self.max_record_bytes)
        records = self._checkpoints[execution_id]
        for key in deletes:  # deletes first, so a key both deleted and put ends up put
            records.pop(key, None)
        records.update(puts)
        self.stats.wrote(len(puts), written)

    async def update(self, lease: Lease, update: ExecutionUpdate) -> ExecutionRecord:
        checks.check_update(lease.execution_id, update, self.max_record_bytes)
        record = self._fenced(lease)
        record = record.replace(**checks.update_changes(update), updated_at=time.time())
        self._records[lease.execution_id] = record
        if update.clear_checkpoints or update.replace_checkpoints is not None:
            self._checkpoints[lease.execution_id].clear()
        if update.replace_checkpoints:
            self._checkpoints[lease.execution_id].update(update.replace_checkpoints)
        return record

    async def load(self, execution_id: str) -> dict[str, bytes]:
        self.stats.loads += 1
        return dict(self._checkpoints.get(execution_id, ()))

    async def load_headers(self, execution_id: str) -> dict[str, bytes]:
        is_header = checks.is_header_key
        records = self._checkpoints.get(execution_id, {})
        return {key: value for key, value in records.items() if is_header(key)}

    async def list(
        self,
        *,
        status: Status | None = None,
        function: str | None = None,
        parent_id: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRecord]:
        checks.check_limit(limit)
        # Newest inserted first before the stable sort, so that equal
        # created_at values come out in the same order as SQLite's.
        found = [
            record
            for record in reversed(self._records.values())
            if checks.listed(record, status, function, parent_id)
        ]
        found.sort(key=lambda record: record.created_at, reverse=True)
        return found[:limit]

    async def request_cancel(self, execution_id: str) -> bool:
        record = self._records.get(execution_id)
        if record is None:
            return False
        self._records[execution_id] = record.replace(cancel_requested=True, updated_at=time.time())
        return True

    async def cancel_requested(self, execution_id: str) -> bool:
        record = self._records.get(execution_id)
        return record is not None and record.cancel_requested

    async def delete(self, execution_id: str) -> bool:
        self._checkpoints.pop(execution_id, None)
        return self._records.pop(execution_id, None) is not None

    async def close(self) -> None:
        """Nothing to release; the data stays readable until the store is dropped."""

    def _fenced(self, lease: Lease) -> ExecutionRecord:
        return leases.fenced(lease, self._records.get(lease.execution_id), time.time())
