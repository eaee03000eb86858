"""Which store a URL names: URL schemes mapped to store factories.

A scheme is registered with the factory itself or with its dotted path
(``"package.module:StoreClass"``), which is imported only when a URL of that
scheme is opened: `import resumable` loads neither SQLite's nor Redis's
code. A factory is a class with a ``from_url(parsed)`` classmethod, or any
callable taking the parsed URL (`StoreURL`); either returns a `Store`, and
reads its own options through the `StoreURL` methods (an unknown option or a
bad value is a ValueError).

Third-party stores register in one of two ways:

* `register_store("mystore", "mypackage.store:MyStore")` at import time;
* an entry point in the ``resumable.stores`` group, named by the scheme, in
  the package's metadata (``[project.entry-points."resumable.stores"]``,
  ``mystore = "mypackage.store:MyStore"``), found the first time a URL
  with an unregistered scheme is opened.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from resumable.stores.base import Store
from resumable.stores.url import StoreURL, parse_store_url, redact_url

__all__ = ["ENTRY_POINT_GROUP", "StoreFactory", "open_store", "register_store", "schemes"]

ENTRY_POINT_GROUP = "resumable.stores"
StoreFactory = Callable[[StoreURL], Store]
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_REDIS_EXTRA = "pip install 'resumable-runtime[redis]'"


@dataclass(frozen=True, slots=True)
class _Entry:
    target: object  # a factory, or the "module:qualname" path of one
    install: str = ""  # what to install when importing the target fails


_registry: dict[str, _Entry] = {
    "memory": _Entry("resumable.stores.memory:MemoryStore"),
    "sqlite": _Entry("resumable.stores.sqlite:SQLiteStore"),
    "redis": _Entry("resumable.stores.redis:RedisStore", _REDIS_EXTRA),
    "rediss": _Entry("resumable.stores.redis:RedisStore", _REDIS_EXTRA),
}


def register_store(scheme: str, factory: StoreFactory | type[Store] | str) -> None:
    """Open URLs of `scheme` (``scheme://...``) with `factory`: a class with
    ``from_url(parsed)``, a callable taking the parsed URL, or the dotted path
    ``"module:qualname"`` of one (imported at the first open). Registering a
    scheme again with the same factory is a no-op; with another one, an error.
    """
    if not isinstance(scheme, str) or not _SCHEME.fullmatch(scheme):
        raise ValueError(
            f"scheme={scheme!r}: expected a lower-case URL scheme such as 'mystore' "
            "(letters, digits, + - ., starting with a letter; no '://')"
        )
    if isinstance(factory, str):
        _split_path(factory)
    elif not callable(factory):
        raise TypeError(f"factory={factory!r}: expected a store class, a callable or 'module:name'")
    known = _registry.get(scheme)
    if known is not None and known.target != factory:
        raise ValueError(
            f"store scheme {scheme!r} is registered already (to {known.target!r}); "
            "pick another scheme for a different store"
        )
    _registry[scheme] = _Entry(factory)


def schemes() -> list[str]:
    """The registered schemes, built-in first (entry points not yet opened
    are not listed)."""
    return list(_registry)


def open_store(url: str) -> Store:
    """Open the store a URL names; raises ValueError for a URL it cannot use."""
    parsed = parse_store_url(url)
    entry = _registry.get(parsed.scheme) or _from_entry_point(parsed.scheme)
    if entry is None:
        raise ValueError(
            f"unsupported store URL {redact_url(url)!r}: the scheme must be one of "
            f"{', '.join(s + '://' for s in _registry)}, or a plain path for a SQLite file. "
            f"HINT: a store of another package registers its scheme with "
            f"resumable.stores.register_store() or a {ENTRY_POINT_GROUP!r} entry point"
        )
    factory = _load(entry, parsed)
    opener = getattr(factory, "from_url", factory)
    store = opener(parsed)
    if not isinstance(store, Store):
        raise TypeError(
            f"the factory of store scheme {parsed.scheme!r} ({entry.target!r}) returned "
            f"{type(store).__name__}, which is not a resumable.stores.Store"
        )
    return store


def _from_entry_point(scheme: str) -> _Entry | None:
    """The entry point named `scheme` in our group, registered as found."""
    from importlib.metadata import entry_points  # ~10 ms: only for an unknown scheme

    for point in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        entry = _registry[scheme] = _Entry(point.value)
        return entry
    return None


def _load(entry: _Entry, parsed: StoreURL) -> Any:
    if not isinstance(entry.target, str):
        return entry.target
    module_name, qualname = _split_path(entry.target)
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        hint = entry.install or f"install the package that provides {module_name}"
        raise ValueError(
            f"store URL {redact_url(parsed.url)!r} needs {module_name}, which failed to "
            f"import ({exc}). HINT: {hint}"
        ) from exc
    try:
        for name in qualname.split("."):
            found = getattr(found, name)
    except AttributeError:
        raise ValueError(
            f"store scheme {parsed.scheme!r}: {module_name} has no {qualname} "
            f"(registered as {entry.target!r})"
        ) from None
    return found


def _split_path(path: str) -> tuple[str, str]:
    module_name, colon, qualname = path.partition(":")
    if not colon or not module_name or not qualname:
        raise ValueError(
            f"store factory {path!r}: expected 'package.module:StoreClass' (a dotted path)"
        )
    return module_name, qualname
