"""Where executions and their checkpoints are kept.

`open_store(url)` picks an implementation from a URL:

* ``memory://``: a new, empty `MemoryStore` (per call: nothing is shared).
* ``sqlite:///relative/state.db``, ``sqlite:////absolute/state.db`` (SQLAlchemy's
  convention: three slashes, then the path as written), ``sqlite://state.db``,
  or a bare path such as ``.resumable/state.db``: a `SQLiteStore`. Options:
  ``?synchronous=full`` (survives power loss; default ``normal``),
  ``?max_record_bytes=N``, ``?busy_timeout=SECONDS``.
* ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS): a
  `RedisStore` (the ``redis`` extra). Options: ``?prefix=NAME`` (the keys'
  namespace, default ``resumable``), ``?unavailable_after=SECONDS`` (how long
  to retry through connection faults), ``?max_record_bytes=N``, and redis-py's
  own (``socket_connect_timeout``, ``ssl_cert_reqs``...).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TypeVar, cast

from resumable.stores.base import (
    DEFAULT_MAX_RECORD_BYTES,
    ExecutionRecord,
    ExecutionUpdate,
    Lease,
    Status,
    Store,
    StoreStats,
)
from resumable.stores.codec import Codec
from resumable.stores.memory import MemoryStore
from resumable.stores.sqlite import DEFAULT_BUSY_TIMEOUT, SQLiteStore
from resumable.stores.url import StoreURL, parse_store_url, redact_url

__all__ = [
    "Codec",
    "ExecutionRecord",
    "ExecutionUpdate",
    "Lease",
    "MemoryStore",
    "SQLiteStore",
    "Status",
    "Store",
    "StoreStats",
    "open_store",
    "redact_url",
]

SCHEMES = ("memory", "sqlite", "redis", "rediss")
_SQLITE_OPTIONS = ("busy_timeout", "max_record_bytes", "synchronous")
_N = TypeVar("_N", int, float)


def open_store(url: str) -> Store:
    """Open the store a URL names; raises ValueError for a URL it cannot use."""
    parsed = parse_store_url(url)
    if parsed.scheme == "memory":
        _no_options(parsed, ())
        return MemoryStore()
    if parsed.scheme == "sqlite":
        return _open_sqlite(parsed)
    if parsed.scheme in ("redis", "rediss"):
        return _open_redis(parsed.url)
    raise ValueError(
        f"unsupported store URL {redact_url(url)!r}: the scheme must be one of "
        f"{', '.join(s + '://' for s in SCHEMES)}, or a plain path for a SQLite file"
    )


def _open_sqlite(parsed: StoreURL) -> SQLiteStore:
    options = parsed.options
    _no_options(parsed, _SQLITE_OPTIONS)
    synchronous = options.get("synchronous", "normal").lower()
    if synchronous not in ("normal", "full"):
        raise ValueError(
            f"store URL {redact_url(parsed.url)!r}: synchronous={synchronous!r}, "
            "expected 'normal' or 'full'"
        )
    return SQLiteStore(
        parsed.path,
        synchronous="full" if synchronous == "full" else "normal",
        max_record_bytes=_number(parsed, "max_record_bytes", int, DEFAULT_MAX_RECORD_BYTES),
        busy_timeout=_number(parsed, "busy_timeout", float, DEFAULT_BUSY_TIMEOUT),
    )


def _open_redis(url: str) -> Store:
    try:
        module = importlib.import_module("resumable.stores.redis")
    except ImportError as exc:
        raise ValueError(
            f"store URL {redact_url(url)!r} needs the Redis store, which needs the redis "
            f"package: pip install 'resumable-runtime[redis]' (import failed: {exc})"
        ) from exc
    return cast(Store, module.RedisStore.from_url(url))


def _no_options(parsed: StoreURL, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(parsed.options) - set(allowed))
    if unknown:
        known = ", ".join(allowed) if allowed else "none"
        raise ValueError(
            f"store URL {redact_url(parsed.url)!r}: unknown option(s) {', '.join(unknown)} "
            f"(known: {known})"
        )


def _number(parsed: StoreURL, name: str, kind: type[_N], default: _N) -> _N:
    options: Mapping[str, str] = parsed.options
    if name not in options:
        return default
    try:
        return kind(options[name])
    except ValueError:
        raise ValueError(
            f"store URL {redact_url(parsed.url)!r}: {name}={options[name]!r} is not a number"
        ) from None
