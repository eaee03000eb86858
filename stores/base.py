"""The `Store` protocol and the value objects every store exchanges.

A store keeps, per execution, one `ExecutionRecord` (what ran, its status,
its lease) and a flat map of checkpoint records (key -> bytes) that the
runtime owns. Stores know nothing about loops or steps: they keep bytes
atomically, fence stale owners, and load everything of an execution at once
(or only its headers, for progress: see `Store.load_headers`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from resumable.stores.statuses import Status

DEFAULT_MAX_RECORD_BYTES = 16 * 1024 * 1024
EVERYTHING = 1_000_000_000  # a `list` limit that means "all of them"

# Who else could write a store's records, which decides the key that signs
# them when none is configured (README, "Security"): "process" (only this
# process: unsigned), "user" (files of this user: the per-user key file) or
# "shared" (other hosts or users: a key must be configured).
KeyScope = Literal["process", "user", "shared"]
KEY_SCOPES: tuple[KeyScope, ...] = ("process", "user", "shared")


def key_scope(store: object) -> KeyScope:
    """The store's `key_scope`; a store without one (a user's own class)
    counts as shared, the kind that needs a configured key."""
    scope = getattr(store, "key_scope", "shared")
    return scope if scope in KEY_SCOPES else "shared"


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """What the store knows about one execution.

    `args`, `result` and `error` are codec-encoded blobs; `error_text` is the
    formatted traceback, readable without unpickling anything.
    """

    id: str
    function: str  # "package.module:Qualified.name", importable by resume()
    name: str  # display name (the function's, or @resumable(name=...))
    args: bytes
    fingerprint: str
    location: str  # "path/to/file.py:LINE" of the function
    # The execution this one is a child of (it was awaited inside it), or None.
    parent_id: str | None = None
    # The checkpoint record format it was written in (see runtime/wire.py);
    # 1 for executions stored before the field existed. Opaque to stores.
    format: int = 1
    status: Status = "running"
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    result: bytes | None = None
    error: bytes | None = None
    error_text: str | None = None
    owner: str | None = None
    lease_expires_at: float = 0.0
    lease_token: int = 0
    attempts: int = 0
    cancel_requested: bool = False

    def replace(self, **changes: object) -> ExecutionRecord:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of ownership of one execution. `token` is the fencing token:
    it grows by one at every acquisition, and a store refuses any write whose
    token is not the execution's current one."""

    execution_id: str
    owner: str
    token: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class ExecutionUpdate:
    """Fields to change on an execution record, applied atomically with the
    fencing check. `None` means "leave as is"; `clear_checkpoints` deletes every
    checkpoint record of the execution in the same transaction, and
    `replace_checkpoints` (when not None) makes them exactly these records."""

    status: Status | None = None
    fingerprint: str | None = None
    # Set only by `resumable migrate --sign`, which signs the stored arguments.
    args: bytes | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result: bytes | None = None
    error: bytes | None = None
    error_text: str | None = None
    attempts: int | None = None
    cancel_requested: bool | None = None
    clear_checkpoints: bool = False
    replace_checkpoints: Mapping[str, bytes] | None = None


@dataclass(slots=True)
class StoreStats:
    """Counters a store keeps about itself (for benchmarks and `show`)."""

    writes: int = 0
    records_written: int = 0
    bytes_written: int = 0
    loads: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def wrote(self, records: int, nbytes: int) -> None:
        """Count one acknowledged `write` of `records` records, `nbytes` bytes."""
        self.writes += 1
        self.records_written += records
        self.bytes_written += nbytes


@runtime_checkable
class Store(Protocol):
    """Where executions and their checkpoints live.

    The contract every implementation passes (`resumable.testing.store_contract`):

    * `create` inserts a new execution and takes its lease in one atomic step;
      it returns None, and changes nothing, if the id already exists.
    * `acquire` takes the lease of an existing execution when it is free or
      expired (or when its current token equals `steal_token`: the caller has
      proven the owner dead), increments the fencing token and returns the
      lease; otherwise it raises `ExecutionLocked` naming the owner.
      Unknown ids raise `ExecutionNotFound`.
    * `write`, `update`, `renew` and `release` are fenced: they raise
      `LeaseLost` and change nothing unless `lease.token` is the execution's
      current token. `write` applies all its puts and deletes atomically, or
      none of them. Once `write` returns, the records survive a crash of the
      writing process (SQLite: a committed WAL transaction; Redis: EXEC done).
    * `load` returns every checkpoint record of an execution, as it was after
      the last acknowledged write, in one round trip.
    * `load_headers` returns the checkpoint records whose key is a header's
      (or a loop location's): a header key contains none of ``+ =`` and
      does not start with ``memo:`` (deltas, fan-out items and memoized
      outcomes are left out). It is what progress viewers poll, so it must
      not read the values of the records it leaves out (nor, where the store
      can, even their keys); the records it returns are those `load` would.
    * `list` returns records newest first (by `created_at`), filtered by status,
      function and/or parent_id when given (`parent_id=X`: the child
      executions of X).
    * `request_cancel` sets `cancel_requested` without a lease (any process may
      ask); it returns False for unknown ids. `cancel_requested` reads that
      one flag (False for unknown ids): owners poll it twice a second, so it
      must not fetch the whole record.
    * A store never unpickles anything: values are opaque bytes.

    Optional class attribute `key_scope` (`KeyScope`; read with `key_scope()`,
    not part of the isinstance check): who else can write the store, which
    picks the signing key when none is configured. "process" (MemoryStore)
    stays unsigned, "user" (SQLiteStore) uses the per-user key file, and
    "shared" (RedisStore, and any store without the attribute) refuses to run
    without a configured key.
    """

    url: str  # safe to print: passwords are redacted
    stats: StoreStats

    async def create(self, record: ExecutionRecord, owner: str, ttl: float) -> Lease | None: ...

    async def get(self, execution_id: str) -> ExecutionRecord | None: ...

    async def acquire(
        self, execution_id: str, owner: str, ttl: float, *, steal_token: int | None = None
    ) -> Lease: ...

    async def renew(self, lease: Lease, ttl: float) -> Lease: ...

    async def release(self, lease: Lease) -> None: ...

    async def write(
        self, lease: Lease, puts: Mapping[str, bytes], deletes: Collection[str] = ()
    ) -> None: ...

    async def update(self, lease: Lease, update: ExecutionUpdate) -> ExecutionRecord: ...

    async def load(self, execution_id: str) -> dict[str, bytes]: ...

    async def load_headers(self, execution_id: str) -> dict[str, bytes]: ...

    async def list(
        self,
        *,
        status: Status | None = None,
        function: str | None = None,
        parent_id: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRecord]: ...

    async def request_cancel(self, execution_id: str) -> bool: ...

    async def cancel_requested(self, execution_id: str) -> bool: ...

    async def delete(self, execution_id: str) -> bool: ...

    async def close(self) -> None: ...
