"""Where executions and their checkpoints are kept.

`open_store(url)` picks an implementation by the URL's scheme (the registry
in `resumable.stores.registry`; other packages add theirs with
`register_store` or a ``resumable.stores`` entry point):

* ``memory://``: a new, empty `MemoryStore` (per call: nothing is shared).
  Option: ``?max_record_bytes=N``.
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

A store's module is imported when its scheme is first opened (or its class
first named here), so `import resumable` loads no store's code.

Writing a store: implement the `Store` protocol (`resumable.stores.base`),
decide leases with `resumable.stores.leases` and the rest with
`resumable.stores.checks`, register its scheme, and prove it with
`resumable.testing.store_contract.StoreContract`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resumable import _lazy

if TYPE_CHECKING:
    from resumable.stores.base import (
        DEFAULT_MAX_RECORD_BYTES,
        ExecutionRecord,
        ExecutionUpdate,
        Lease,
        Store,
        StoreStats,
    )
    from resumable.stores.codec import Codec
    from resumable.stores.memory import MemoryStore
    from resumable.stores.registry import open_store, register_store
    from resumable.stores.sqlite import SQLiteStore
    from resumable.stores.statuses import Status
    from resumable.stores.url import StoreURL, parse_store_url, redact_url

__all__ = [
    "Codec",
    "DEFAULT_MAX_RECORD_BYTES",
    "ExecutionRecord",
    "ExecutionUpdate",
    "Lease",
    "MemoryStore",
    "SQLiteStore",
    "Status",
    "Store",
    "StoreStats",
    "StoreURL",
    "open_store",
    "parse_store_url",
    "redact_url",
    "register_store",
]

# Imported on first use (PEP 562), like the registry's schemes: the command
# line's `--help` reads `base` and must not pay for the codec or a store.
_LAZY = {
    "DEFAULT_MAX_RECORD_BYTES": "resumable.stores.base",
    "ExecutionRecord": "resumable.stores.base",
    "ExecutionUpdate": "resumable.stores.base",
    "Lease": "resumable.stores.base",
    "Status": "resumable.stores.statuses",
    "Store": "resumable.stores.base",
    "StoreStats": "resumable.stores.base",
    "StoreURL": "resumable.stores.url",
    "parse_store_url": "resumable.stores.url",
    "redact_url": "resumable.stores.url",
    "Codec": "resumable.stores.codec",
    "MemoryStore": "resumable.stores.memory",
    "SQLiteStore": "resumable.stores.sqlite",
    "open_store": "resumable.stores.registry",
    "register_store": "resumable.stores.registry",
}


__getattr__ = _lazy.attributes(globals(), _LAZY)
