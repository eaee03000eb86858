"""What every store decides the same way: lease rules, size limits, errors.

Kept in one place so that the memory, SQLite and Redis stores cannot drift
apart on the contract the conformance suite checks.
"""

from __future__ import annotations

from collections.abc import Mapping

from resumable.errors import ExecutionLocked, LeaseLost, RecordTooLarge
from resumable.stores.base import ExecutionRecord, ExecutionUpdate, Lease

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

MEMO_PREFIX = "memo:"
# Characters that make a key not a header's: a delta ("+") or an item ("=").
NOT_HEADER = "+="


def is_header_key(key: str) -> bool:
    """A header (or loop location) key: contains none of + = and does not
    start with memo:. The rule of `Store.load_headers`."""
    return not key.startswith(MEMO_PREFIX) and "+" not in key and "=" not in key


def past_non_headers(key: str) -> str:
    """For a key that is not a header's: the least string above every key
    that shares the prefix making it one ("#3=17" -> "#3>": above every item
    of "#3"; "memo:x" -> "memo;"). Keys below it, in byte order, that are at
    least `key` are not headers either, so an ordered store skips them."""
    if key.startswith(MEMO_PREFIX):
        return "memo;"
    cut = min(i for i in (key.find("+"), key.find("=")) if i >= 0)
    return key[:cut] + chr(ord(key[cut]) + 1)


def check_ttl(ttl: float) -> None:
    if not ttl > 0:  # also refuses NaN
        raise ValueError(f"ttl={ttl!r}: a lease must last a positive number of seconds")


def check_limit(limit: int) -> None:
    if limit < 0:
        raise ValueError(f"limit={limit!r}: expected 0 or more")


def check_max_record_bytes(max_record_bytes: int) -> None:
    if max_record_bytes < 1:
        raise ValueError(f"max_record_bytes={max_record_bytes!r}: expected a positive size")


def lease_is_free(
    owner: str | None, expires_at: float, token: int, now: float, steal_token: int | None
) -> bool:
    """May `acquire` take this lease? Free, expired, or proven dead by the caller."""
    return owner is None or expires_at <= now or steal_token == token


def locked(execution_id: str, owner: str | None, expires_at: float, now: float) -> ExecutionLocked:
    return ExecutionLocked(execution_id, owner or "another process", max(0.0, expires_at - now))


def fence_holds(lease: Lease, token: int, owner: str | None) -> bool:
    """Is `lease` still the execution's current one? Released leases are not."""
    return token == lease.token and owner == lease.owner


def lease_lost(
    lease: Lease,
    *,
    found: bool,
    owner: str | None = None,
    expires_at: float = 0.0,
    now: float = 0.0,
) -> LeaseLost:
    if not found:
        holder = "nobody (the execution was deleted)"
    elif owner is None:
        holder = "nobody (the lease was released)"
    else:
        holder = owner
    return LeaseLost(lease.execution_id, holder, max(0.0, expires_at - now))


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
