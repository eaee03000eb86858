"""Process-wide settings: which store, which codec, lease timing.

A store is chosen by argument, then `configure(store=...)`, then the
RESUMABLE_STORE environment variable, then `.resumable/state.db` in the
working directory. Stores opened from URLs are cached per URL, so every
execution in a process shares one connection per store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from resumable import _keys
from resumable._logs import get_logger
from resumable.errors import SecretKeyRequired
from resumable.runtime.settings import OnCodeChange, Settings, check_on_code_change
from resumable.stores import Codec, Store, open_store
from resumable.stores.base import key_scope

log = get_logger()

DEFAULT_STORE_URL = "sqlite:///.resumable/state.db"
DEFAULT_LEASE_TTL = 15.0


@dataclass(slots=True)
class _Configuration:
    store: Store | str | None = None
    secret_key: bytes | None = None
    secret_key_fallbacks: tuple[bytes, ...] | None = None
    codec: Literal["auto", "msgpack"] = "auto"
    allow_unsigned: bool | None = None
    lease_ttl: float = float(os.environ.get("RESUMABLE_LEASE_TTL") or DEFAULT_LEASE_TTL)


_config = _Configuration()
_opened: dict[str, Store] = {}
# Stores (by URL) already warned about in this process: the warning that
# records are unsigned is said once per store, not at every execution.
_warned_unsigned: set[str] = set()


# The carry audit and the analysis cache load the bytecode machinery: only
# when configured (a process that only reads a store never needs them).
def _set_audit(enabled: bool | None) -> None:
    from resumable.runtime import audit

    audit.configure(enabled)


def _set_analysis_cache(setting: bool | str | os.PathLike[str] | None) -> None:
    from resumable.runtime import analysis_cache

    analysis_cache.configure(setting)


def configure(
    *,
    store: Store | str | None = None,
    secret_key: str | bytes | Sequence[str | bytes] | None = None,
    secret_key_fallbacks: Sequence[str | bytes] | None = None,
    codec: Literal["auto", "msgpack"] | None = None,
    lease_ttl: float | None = None,
    audit_carry: bool | None = None,
    analysis_cache: bool | str | os.PathLike[str] | None = None,
    allow_unsigned: bool | None = None,
) -> None:
    """Set process-wide defaults; arguments left as None keep their value.

    `store` is a Store or a URL (`sqlite:///path.db`, `redis://host/0`,
    `memory://`). `secret_key` signs every stored blob (HMAC-SHA256) and
    refuses unsigned or tampered ones before unpickling; also
    RESUMABLE_SECRET_KEY. A list of keys rotates: the first writes, all read
    (the same as the first as `secret_key` and the rest as
    `secret_key_fallbacks`). `secret_key_fallbacks` are older keys that still
    read (never write) while a rotation runs; also
    RESUMABLE_SECRET_KEY_FALLBACKS, comma-separated. Without a key, SQLite
    stores sign with the per-user key file and Redis stores refuse to run
    (`SecretKeyRequired`); `allow_unsigned=True` (also
    RESUMABLE_ALLOW_UNSIGNED=1) writes and reads unsigned records instead,
    with a warning, until a key is configured. `codec="msgpack"`
    refuses pickle entirely. `lease_ttl` (seconds) is how long an owner's
    lease lasts without renewal. `audit_carry=True` checks, at every
    checkpoint, that no uncarried local changed and that every delta rebuilds
    its value (`CarryAuditError`); also `RESUMABLE_AUDIT_CARRY=1`. It costs a
    re-encoding of the loop's locals per checkpoint: for tests.
    `analysis_cache` keeps the bytecode analysis of loops and the functions
    they call across processes (README, "Configuration"): False turns it
    off, True uses the user's cache directory, a path uses that directory.
    """
    if store is not None:
        if not isinstance(store, str | Store):
            raise TypeError(f"configure(store=...) takes a Store or a URL, got {store!r}")
        _config.store = store
    if secret_key is not None:
        if isinstance(secret_key, str | bytes):
            _config.secret_key = _key_bytes(secret_key)
        else:
            keys = [_key_bytes(k) for k in secret_key]
            if not keys:
                raise ValueError("configure(secret_key=[]): give at least one key")
            _config.secret_key, fallbacks = keys[0], tuple(keys[1:])
            if secret_key_fallbacks is None:
                _config.secret_key_fallbacks = fallbacks
    if secret_key_fallbacks is not None:
        if isinstance(secret_key_fallbacks, str | bytes):
            raise TypeError("configure(secret_key_fallbacks=...) takes a list of keys, not one key")
        _config.secret_key_fallbacks = tuple(_key_bytes(k) for k in secret_key_fallbacks)
    if allow_unsigned is not None:
        if not isinstance(allow_unsigned, bool):
            raise TypeError(f"configure(allow_unsigned={allow_unsigned!r}): expected True or False")
        _config.allow_unsigned = allow_unsigned
    if codec is not None:
        if codec not in ("auto", "msgpack"):
            raise ValueError(f"configure(codec={codec!r}): expected 'auto' or 'msgpack'")
        _config.codec = codec
    if audit_carry is not None:
        if not isinstance(audit_carry, bool):
            raise TypeError(f"configure(audit_carry={audit_carry!r}): expected True or False")
        _set_audit(audit_carry)
    if analysis_cache is not None:
        if not isinstance(analysis_cache, bool | str | os.PathLike):
            raise TypeError(
                f"configure(analysis_cache={analysis_cache!r}): expected True, False or a directory"
            )
        _set_analysis_cache(analysis_cache)
    if lease_ttl is not None:
        if lease_ttl <= 0:
            raise ValueError(f"configure(lease_ttl={lease_ttl!r}): must be > 0 seconds")
        _config.lease_ttl = float(lease_ttl)


def reset() -> None:
    """Forget configure() calls and cached stores (for tests)."""
    global _config  # noqa: PLW0603
    _config = _Configuration()
    _opened.clear()
    _warned_unsigned.clear()
    _set_audit(None)
    _set_analysis_cache(None)


def store_choice(store: Store | str | None = None) -> Store | str:
    """The store an operation uses: `store`, else configure(store=...), else
    $RESUMABLE_STORE, else the default SQLite file (the one order of choice)."""
    chosen = store if store is not None else _config.store
    if chosen is None:
        chosen = os.environ.get("RESUMABLE_STORE") or DEFAULT_STORE_URL
    return chosen


def resolve_store(store: Store | str | None = None) -> Store:
    chosen = store_choice(store)
    if isinstance(chosen, str):
        opened = _opened.get(chosen)
        if opened is None:
            opened = _opened[chosen] = open_store(chosen)
        return opened
    return chosen


def _key_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


def configured_key() -> bytes | None:
    """The key the user chose: configure(secret_key=...), else
    RESUMABLE_SECRET_KEY, else the file RESUMABLE_SECRET_KEY_FILE names.
    None when none of them is set."""
    if _config.secret_key is not None:
        return _config.secret_key
    if os.environ.get("RESUMABLE_SECRET_KEY"):
        return os.environ["RESUMABLE_SECRET_KEY"].encode()
    path = os.environ.get("RESUMABLE_SECRET_KEY_FILE")
    if path:
        return _keys.read_key_file(Path(path))
    return None


def allow_unsigned() -> bool:
    """configure(allow_unsigned=...), else RESUMABLE_ALLOW_UNSIGNED. A value
    that is neither yes nor no is refused rather than read as either."""
    if _config.allow_unsigned is not None:
        return _config.allow_unsigned
    text = os.environ.get("RESUMABLE_ALLOW_UNSIGNED", "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"RESUMABLE_ALLOW_UNSIGNED={text!r}: expected 1 or 0")


def secret_key_for(store: Store) -> bytes | None:
    """The key that signs `store`'s records, None for unsigned ones: the
    configured key, else the store kind's default (`default_key_for`)."""
    key = configured_key()
    return key if key is not None else default_key_for(store)


def default_key_for(store: Store) -> bytes | None:
    """The key of a store when none is configured, by who else can write it
    (`key_scope`): nobody (memory) stays unsigned; an opt-in to unsigned
    records is honoured, with a warning; this user's files (SQLite) get the
    per-user key; a shared server (Redis, unknown stores) is refused, since
    unsigned records there let any of its clients run code in this process."""
    scope = key_scope(store)
    if scope == "process":
        return None
    if allow_unsigned():
        _warn_unsigned(store)
        return None
    if scope == "user":
        return _keys.user_key()
    raise SecretKeyRequired(store.url)


def _warn_unsigned(store: Store) -> None:
    if store.url in _warned_unsigned:
        return
    _warned_unsigned.add(store.url)
    log.warning(
        "records are not signed",
        store=store.url,
        risk="anyone who can write to this store can run code in the processes that read it",
        hint="configure a key (`resumable keygen`, RESUMABLE_SECRET_KEY) instead of "
        "RESUMABLE_ALLOW_UNSIGNED / configure(allow_unsigned=True)",
    )


def codec_for(store: Store) -> Codec:
    """The codec that reads and writes `store`'s records: its key (see
    `secret_key_for`) and the configured fallback keys. A fallback key
    without a configured key to write with is refused."""
    fallbacks = _config.secret_key_fallbacks
    if fallbacks is None:
        listed = os.environ.get("RESUMABLE_SECRET_KEY_FALLBACKS", "")
        fallbacks = tuple(k.strip().encode() for k in listed.split(",") if k.strip())
    key = configured_key()
    if fallbacks and key is None:
        raise ValueError(
            "secret key fallbacks are set (RESUMABLE_SECRET_KEY_FALLBACKS or "
            "configure(secret_key_fallbacks=...)) but no key to write with: set "
            "RESUMABLE_SECRET_KEY to the new key (make one with `resumable keygen`)"
        )
    if key is None:
        key = default_key_for(store)
    return Codec(mode=_config.codec, secret_key=key, fallback_keys=fallbacks)


def settings(store: Store | str | None = None, on_code_change: OnCodeChange = "error") -> Settings:
    check_on_code_change(on_code_change)
    chosen = resolve_store(store)
    return Settings(
        store=chosen,
        codec=codec_for(chosen),
        lease_ttl=_config.lease_ttl,
        on_code_change=on_code_change,
    )


@contextmanager
def default_store(store: Store | str) -> Iterator[None]:
    """Make `store` the process default while the block runs (the pytest
    fixture does this), then put back whatever was configured before."""
    previous = _config.store
    _config.store = store
    try:
        yield
    finally:
        _config.store = previous
