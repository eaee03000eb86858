"""What every store refuses or decides the same way, for store authors:
argument checks, record size limits, the fields an update sets, which keys
`load_headers` returns, and which records `list` keeps.

The lease and fencing rules are in `resumable.stores.leases`. Kept in one
place so that the memory, SQLite and Redis stores (and a store written
outside the project) cannot drift apart on the contract that
`resumable.testing.store_contract.StoreContract` checks.
"""

from __future__ import annotations

from collections.abc import Mapping

from resumable.errors import RecordTooLarge
from resumable.stores.base import ExecutionRecord, ExecutionUpdate
from resumable.stores.leases import check_ttl
from resumable.stores.statuses import Status

__all__ = [
    "DELTA_MARK",
    "ITEM_MARK",
    "MEMO_PREFIX",
    "UPDATE_FIELDS",
    "check_create",
    "check_limit",
    "check_max_record_bytes",
    "check_puts",
    "check_update",
    "is_header_key",
    "listed",
    "past_non_headers",
    "update_changes",
]

# ExecutionUpdate fields that map one to one onto ExecutionRecord fields.
UPDATE_FIELDS: tuple[str, ...] = (
    "status",
    "fingerprint",
    "args",
    "started_at",
    "finished_at",
    "result",
    "error",
    "error_text",
    "attempts",
    "cancel_requested",
)


# -- which checkpoint keys `load_headers` returns (see Store) -------------------

# What makes a key not a header's: a memoized step outcome ("memo:..."), a
# carried value's delta or chunk ("#0+name.3"), a fan-out item ("#2=17").
# runtime/wire.py builds and parses every key with these same marks.
MEMO_PREFIX = "memo:"
DELTA_MARK = "+"
ITEM_MARK = "="


def is_header_key(key: str) -> bool:
    """A header (or loop location) key: contains none of + = and does not
    start with memo:. The rule of `Store.load_headers`."""
    return not key.startswith(MEMO_PREFIX) and DELTA_MARK not in key and ITEM_MARK not in key


def past_non_headers(key: str) -> str:
    """For a key that is not a header's: the least string above every key
    that shares the prefix making it one ("#3=17" -> "#3>": above every item
    of "#3"; "memo:x" -> "memo;"). Keys below it, in byte order, that are at
    least `key` are not headers either, so an ordered store skips them."""
    if key.startswith(MEMO_PREFIX):
        return "memo;"
    cut = min(i for i in (key.find(DELTA_MARK), key.find(ITEM_MARK)) if i >= 0)
    return key[:cut] + chr(ord(key[cut]) + 1)


def check_limit(limit: int) -> None:
    """Refuse a negative `list` limit."""
    if limit < 0:
        raise ValueError(f"limit={limit!r}: expected 0 or more")


def check_max_record_bytes(max_record_bytes: int) -> None:
    """Refuse a record size cap below one byte."""
    if max_record_bytes < 1:
        raise ValueError(f"max_record_bytes={max_record_bytes!r}: expected a positive size")


def check_create(record: ExecutionRecord, ttl: float, limit: int) -> None:
    """What every store's `create` refuses before touching anything."""
    check_ttl(ttl)
    if len(record.args) > limit:
        raise RecordTooLarge(record.id, "args", len(record.args), limit)


def check_puts(execution_id: str, puts: Mapping[str, bytes], limit: int) -> int:
    """Refuse oversize values before anything is written; return the bytes to write."""
    total = 0
    for key, value in puts.items():
        size = len(value)
        if size > limit:
            raise RecordTooLarge(execution_id, key, size, limit)
        total += len(key) + size
    return total


def check_update(execution_id: str, update: ExecutionUpdate, limit: int) -> None:
    """Refuse an update whose blobs are larger than `limit` bytes."""
    for name in ("args", "result", "error"):
        blob: bytes | None = getattr(update, name)
        if blob is not None and len(blob) > limit:
            raise RecordTooLarge(execution_id, name, len(blob), limit)


def update_changes(update: ExecutionUpdate) -> dict[str, object]:
    """The record fields `update` sets (None means "leave as is")."""
    changes: dict[str, object] = {}
    for name in UPDATE_FIELDS:
        value = getattr(update, name)
        if value is not None:
            changes[name] = value
    return changes


def listed(
    record: ExecutionRecord,
    status: Status | None = None,
    function: str | None = None,
    parent_id: str | None = None,
) -> bool:
    """Does `record` pass `Store.list`'s filters (None: any)?"""
    return (
        (status is None or record.status == status)
        and (function is None or record.function == function)
        and (parent_id is None or record.parent_id == parent_id)
    )
