"""The lease and fencing rules every store follows, for store authors.

A store keeps, per execution, an owner (or none), the time its lease expires
(`lease_expires_at`, seconds since the epoch) and a fencing token
(`lease_token`, 0 before the first lease). The shipped stores decide with
these functions, so a store written outside the project can decide exactly
as they do; `resumable.testing.store_contract.StoreContract` checks the
result.

Who may take a lease (`create`, `acquire`):

* `create` always takes the first lease of a new execution (token 1, or the
  record's own `lease_token` + 1). An id that exists already is not created
  again and nothing changes: `create` returns None.
* `acquire` takes the lease when `may_acquire` says so: nobody holds it (it
  was released), it has expired (`expires_at <= now`), or the caller passes
  the current token as `steal_token`, which it may do only once it has proven
  the holder dead (its process is gone). Otherwise it raises `locked(...)`:
  `ExecutionLocked`, naming the holder and the seconds its lease has left.
  An unknown id raises `ExecutionNotFound`.

Expiry: a lease lasts `ttl` seconds (`check_ttl`: a positive number, or
ValueError) from the moment it is taken or renewed. An expired lease that
nobody took over still holds: its owner may renew it and write with it.
Only another acquisition ends it.

Fencing tokens: every acquisition adds one to the token (`next_token`); a
renewal keeps it. `renew`, `release`, `write` and `update` go through only
while `fence_holds`: the lease's token and owner are the execution's current
ones (a released lease is no longer current, so a released owner cannot
write). Otherwise they raise `lease_lost(...)`: `LeaseLost`, naming who
holds the execution now ("nobody (the execution was deleted)", "nobody (the
lease was released)", or the new owner) and change nothing. Releasing a
lease twice is not an error. `fenced(lease, record)` applies the rule to a
whole `ExecutionRecord`, for stores that keep records as they are.

The clock is the store's: a store shared between hosts takes `now` from one
place (Redis scripts call TIME) so that hosts with skewed clocks agree.
"""

from __future__ import annotations

from resumable.errors import ExecutionLocked, LeaseLost
from resumable.stores.base import ExecutionRecord, Lease

__all__ = [
    "check_ttl",
    "fence_holds",
    "fenced",
    "lease_lost",
    "locked",
    "may_acquire",
    "next_token",
]


def check_ttl(ttl: float) -> None:
    """Refuse a lease length that is not a positive number of seconds."""
    if not ttl > 0:  # also refuses NaN
        raise ValueError(f"ttl={ttl!r}: a lease must last a positive number of seconds")


def may_acquire(
    owner: str | None, expires_at: float, token: int, now: float, steal_token: int | None
) -> bool:
    """May `acquire` take this lease? Free, expired, or proven dead by the caller."""
    return owner is None or expires_at <= now or steal_token == token


def next_token(token: int) -> int:
    """The fencing token of the next acquisition after `token`."""
    return token + 1


def locked(execution_id: str, owner: str | None, expires_at: float, now: float) -> ExecutionLocked:
    """The error of an `acquire` that `may_acquire` refused."""
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
    """The error of a fenced operation whose lease is not current: `found`
    is False when the execution no longer exists."""
    if not found:
        holder = "nobody (the execution was deleted)"
    elif owner is None:
        holder = "nobody (the lease was released)"
    else:
        holder = owner
    return LeaseLost(lease.execution_id, holder, max(0.0, expires_at - now))


def fenced(lease: Lease, record: ExecutionRecord | None, now: float) -> ExecutionRecord:
    """`record` if `lease` is its current lease, else raise `LeaseLost`
    (`record` None: the execution does not exist)."""
    if record is None:
        raise lease_lost(lease, found=False)
    if not fence_holds(lease, record.lease_token, record.owner):
        raise lease_lost(
            lease, found=True, owner=record.owner, expires_at=record.lease_expires_at, now=now
        )
    return record
