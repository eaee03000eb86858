"""Values to bytes and back: msgpack for plain data, pickle for the rest.

Every blob starts with a one-byte format tag, so a reader knows what it holds
before it touches the payload:

* ``m`` + msgpack: plain data. `strict_types=True` sends every type that
  msgpack would store inexactly (tuple, set, frozenset, ints past 64 bits,
  subclasses of dict/list/str...) through `_default`, which gives it a form
  that decodes to the same type, or gives up, and then:
* ``p`` + pickle: everything else (dataclasses, closures, custom classes).
* ``s`` + HMAC-SHA256 (32 bytes) + one of the above: a signed blob. The
  signature is checked before the payload is decoded, so a tampered or foreign
  record is refused before any of it is unpickled.
* ``c`` + a 16-byte keyed BLAKE2b MAC + ``m`` blob: a *chained* header
  (format 4 loop headers). Its MAC also covers bytes the caller derives from
  other records (`bound`: digests of the loop's delta records, which carry
  no signature of their own), so one 17-byte tag per iteration
  authenticates the header and every delta record behind it. Only
  `open_chained` verifies it, given the same `bound`; readers that promise
  to run no code (progress) may decode its msgpack unverified.

`dumps` runs at every checkpoint, so its plain-data path is kept to one reused
msgpack Packer call and a regex search (~0.8 µs for a small dict here).
"""

from __future__ import annotations

import ast
import copyreg
import hashlib
import hmac
import io
import itertools
import pickle
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import cloudpickle
import msgpack

from resumable.errors import CorruptCheckpoint

__all__ = ["Codec", "CodecMode", "UnserializableValue"]

CodecMode = Literal["auto", "msgpack"]

_MSGPACK = ord("m")
_PICKLE = ord("p")
_LINKED = ord("l")
_LINKED_TAG = b"l"
_SIGNED = ord("s")
_MSGPACK_TAG = b"m"
_PICKLE_TAG = b"p"
_SIGNED_TAG = b"s"
_CHAINED = ord("c")
_CHAINED_TAG = b"c"
_MAC_SIZE = hashlib.sha256().digest_size
# 128 bits: a forgery must guess the tag, and every guess costs the attacker
# a resume that refuses it. It is written with every loop iteration, where
# 16 bytes fewer than HMAC-SHA256 keep the store within 1.5x of the payload
# (README, "Benchmarks"). Keyed BLAKE2b (RFC 7693's MAC mode), pre-keyed once and
# copied per record: about 0.8 us here against 2-3 us for Python's HMAC
# wrapper, on the per-iteration path. Its key is derived from the secret
# key (HMAC-SHA256 of a label), so secret keys of any length work.
_CHAINED_MAC_SIZE = 16
_CHAINED_PERSON = b"resumable.chain"
# Absorbed into the HMAC state once, so signatures made for this format can
# never be confused with some other use of the same secret key (nor a
# chained tag with a truncated whole-blob signature).
_MAC_DOMAIN = b"resumable.codec.v1\x00"
_CHAINED_DOMAIN = b"resumable.codec.chained.v1\x00"

_PLAIN_TYPES = "None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset"

# Extension codes of the msgpack format (stored: never reuse one). A tuple,
# set or frozenset is stored as an array whose first item is its marker, so
# it is packed in the same pass as everything else (an ExtType holding the
# packed items would need a nested pack() per tuple: ~4x slower).
_EXT_TUPLE = 1
_EXT_SET = 2
_EXT_FROZENSET = 3
_EXT_BIGINT = 4


class _Marker:
    """What a marker extension decodes to, until `_list_hook` replaces its array."""

    __slots__ = ("build", "ext")

    def __init__(self, code: int, build: type[tuple[Any, ...] | set[Any] | frozenset[Any]]) -> None:
        self.build = build
        # ExtType(code, data) validates its arguments in Python (~0.45 µs);
        # this one is valid by construction, and built once.
        self.ext: msgpack.ExtType = tuple.__new__(msgpack.ExtType, (code, b""))

    def __repr__(self) -> str:
        return f"<stray {self.build.__name__} marker>"


_TUPLE = _Marker(_EXT_TUPLE, tuple)
_SET = _Marker(_EXT_SET, set)
_FROZENSET = _Marker(_EXT_FROZENSET, frozenset)
_MARKERS = {_EXT_TUPLE: _TUPLE, _EXT_SET: _SET, _EXT_FROZENSET: _FROZENSET}

# Even with strict_types, msgpack packs bytearray and memoryview as `bin`
# (which decodes to bytes) and a user's own msgpack.ExtType as an extension
# (which `_ext_hook` would misread). Such values can only be present if the
# packed bytes contain a bin or ext marker byte, so a cheap search of the
# output (~0.2 µs) decides whether the value needs the slower type walk.
_MAYBE_INEXACT = re.compile(rb"[\xc4-\xc9\xd4-\xd8]").search
_INEXACT_TYPES = (bytearray, memoryview, msgpack.ExtType)
_SCALARS = frozenset({type(None), bool, int, float, str, bytes})


def _default(value: Any) -> object:
    # Called by msgpack for every value that is not exactly one of its
    # native types, and for ints that overflow 64 bits. Exact type checks
    # on purpose: a subclass (OrderedDict, IntEnum, ...) must keep its type,
    # so it goes to pickle.
    kind = type(value)
    if kind is tuple:
        return [_TUPLE.ext, *value]
    if kind is set:
        return [_SET.ext, *value]
    if kind is frozenset:
        return [_FROZENSET.ext, *value]
    if kind is int:
        number: int = value
        size = (number.bit_length() + 8) // 8  # +8, not +7: room for the sign bit
        data = number.to_bytes(size, "big", signed=True)
        return tuple.__new__(msgpack.ExtType, (_EXT_BIGINT, data))
    raise _NotPlain(value)


def _ext_hook(code: int, data: bytes) -> object:
    marker = _MARKERS.get(code)
    if marker is not None:
        return marker
    if code == _EXT_BIGINT:
        return int.from_bytes(data, "big", signed=True)
    raise ValueError(f"unknown msgpack extension type {code}")


def _list_hook(items: list[Any]) -> object:
    if items and type(items[0]) is _Marker:
        return items[0].build(items[1:])
    return items


def _unpackb(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(
        data, ext_hook=_ext_hook, list_hook=_list_hook, strict_map_key=False, raw=False
    )


class _Packers(threading.local):
    # A Packer is reused across calls (~2x faster than msgpack.packb, which
    # builds one each time), but it is not re-entrant and `_default` runs
    # Python code, during which another thread may call `dumps` on the same
    # Codec: so one Packer per thread.
    def __init__(self) -> None:
        self.packer = msgpack.Packer(default=_default, strict_types=True)


class UnserializableValue(Exception):
    """`Codec.dumps` cannot store this value; `reason` says why, for a person.

    Internal: the runtime turns it into `CheckpointError`, adding the loop and
    variable name it knows and the codec does not.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


class _NotPlain(TypeError):
    """Raised from inside the msgpack Packer for a value it cannot store exactly."""

    def __init__(self, value: object) -> None:
        self.type_name = type(value).__qualname__
        super().__init__(self.type_name)


def _check_exact(value: object) -> None:
    # Raises _NotPlain for a value msgpack packed without complaint but would
    # not give back with its type. Only exact containers need a look: any
    # other container type already went to `_default`, which refused it.
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) not in _SCALARS:
                _check_exact(key)
            if type(item) not in _SCALARS:
                _check_exact(item)
    elif kind is list or kind is tuple or kind is set or kind is frozenset:
        for item in value:  # type: ignore[attr-defined]
            if type(item) not in _SCALARS:
                _check_exact(item)
    elif isinstance(value, _INEXACT_TYPES):
        raise _NotPlain(value)


class Codec:
    """Turns checkpointed values into bytes and back, with exact types.

    `mode="auto"` stores plain data with msgpack and anything else with
    (cloud)pickle; `mode="msgpack"` refuses pickle both ways. With
    `secret_key`, every blob is signed and only blobs signed with that key,
    or with one of `fallback_keys` (older keys, while a rotation runs), are
    read back.
    """

    __slots__ = ("_chained", "_fallbacks", "_mac", "_mode", "_packers")

    _mac: hmac.HMAC | None
    _fallbacks: tuple[hmac.HMAC, ...]
    # The same keys, as pre-keyed BLAKE2b states for chained headers.
    _chained: tuple[hashlib.blake2b, ...]
    _mode: CodecMode
    _packers: _Packers

    def __init__(
        self,
        *,
        mode: CodecMode = "auto",
        secret_key: bytes | None = None,
        fallback_keys: Sequence[bytes] = (),
    ) -> None:
        if mode not in ("auto", "msgpack"):
            raise ValueError(f"Codec(mode={mode!r}): mode must be 'auto' or 'msgpack'")
        for what, key in (
            ("secret_key", secret_key),
            *(("fallback_keys", k) for k in fallback_keys),
        ):
            if key is None:
                continue
            if not isinstance(key, bytes):
                raise TypeError(
                    f"Codec({what}=...): expected bytes, got {type(key).__name__}; "
                    "encode a text key first, e.g. key.encode()"
                )
            if not key:
                raise ValueError(f"Codec({what}=b''): an empty key signs nothing")
        if fallback_keys and secret_key is None:
            raise ValueError("Codec(fallback_keys=...) needs a secret_key to write with")
        self._mode = mode
        self._packers = _Packers()
        # Each copied per blob: the key is absorbed once.
        self._mac = None if secret_key is None else _keyed(secret_key)
        self._fallbacks = tuple(_keyed(key) for key in fallback_keys)
        keys = () if secret_key is None else (secret_key, *fallback_keys)
        self._chained = tuple(_chain_keyed(key) for key in keys)

    @property
    def mode(self) -> CodecMode:
        return self._mode

    @property
    def signed(self) -> bool:
        return self._mac is not None

    def __repr__(self) -> str:
        return f"Codec(mode={self._mode!r}, signed={self.signed})"

    def dumps(
        self,
        value: Any,
        *,
        execution_id: str = "?",
        key: str = "?",
        keep_sharing: bool = False,
        sign: bool = True,
    ) -> bytes:
        """Encode `value`; raises `UnserializableValue` if it cannot be stored.

        `sign=False`: leave the blob unsigned even with a key, because what
        authenticates it is another record (a chained header, see
        `dumps_chained`); its reader passes `verified=True` to `loads`.

        When signing, the signature also covers `execution_id` and `key`, the
        place the blob is written to: `loads` given another place refuses it,
        so a signed blob cannot be moved to another record or execution.

        `keep_sharing`: the value holds one object in several places (two
        carried locals aliasing one list) and must come back that way: pickle,
        whose memo keeps it, not msgpack, which would write copies."""
        if keep_sharing:
            if self._mode == "msgpack":
                raise UnserializableValue(
                    "the values share objects, which msgpack would store as separate "
                    "copies, and the codec is in msgpack-only mode, which refuses pickle"
                )
            blob = _PICKLE_TAG + _pickle(value)
            if self._mac is None or not sign:
                return blob
            return _SIGNED_TAG + self._sign(blob, execution_id, key) + blob
        try:
            # Packed inside a 1-element list whose header byte (0x91) is then
            # dropped: msgpack 1.x packs 1025 levels of nesting but unpacks
            # only 1024; the extra level makes pack refuse what unpack would.
            packed: bytes = self._packers.packer.pack([value])
            if _MAYBE_INEXACT(packed) is not None:
                _check_exact(value)
            blob = _MSGPACK_TAG + packed[1:]
        except Exception as exc:  # _NotPlain, a string with lone surrogates, deep nesting...
            blob = self._dumps_slow(value, exc)
        if self._mac is None or not sign:
            return blob
        return _SIGNED_TAG + self._sign(blob, execution_id, key) + blob

    def dumps_plain(self, value: Any, *, execution_id: str = "?", key: str = "?") -> bytes:
        """Encode data the caller built from exact plain types only (None,
        bool, int, float, str, bytes, and lists/dicts of them), skipping the
        exactness check `dumps` needs for user values. The runtime's record
        headers use it: they are written every iteration. Decoded by `loads`."""
        packed: bytes = self._packers.packer.pack([value])  # see dumps
        blob = _MSGPACK_TAG + packed[1:]
        if self._mac is None:
            return blob
        return _SIGNED_TAG + self._sign(blob, execution_id, key) + blob

    def dumps_chained(
        self, value: Any, bound: bytes, *, execution_id: str = "?", key: str = "?"
    ) -> bytes:
        """Encode plain data (as `dumps_plain`) under a truncated MAC that
        also covers `bound`, bytes the reader derives again from other
        records (see `open_chained`). Without a key: the plain blob."""
        packed: bytes = self._packers.packer.pack([value])  # see dumps
        blob = _MSGPACK_TAG + packed[1:]
        if self._mac is None:
            return blob
        mac = _mac_of(self._chained[0], blob, execution_id, key, bound)
        return _CHAINED_TAG + mac + blob

    def open_chained(
        self, data: bytes, bound: bytes, *, execution_id: str = "?", key: str = "?"
    ) -> Any:
        """Decode a record `dumps_chained` wrote, after checking its MAC over
        the record and `bound`; anything else is refused. Callers pick this
        over `loads` by the record's tag (`is_chained`)."""

        def corrupt(reason: str) -> CorruptCheckpoint:
            return CorruptCheckpoint(execution_id, key, reason)

        if data[:1] != _CHAINED_TAG:
            raise corrupt("not a chained record")
        if self._mac is None:
            raise corrupt(
                "this record is signed; set RESUMABLE_SECRET_KEY to the key it was written with"
            )
        start = 1 + _CHAINED_MAC_SIZE
        if len(data) <= start:
            raise corrupt("the signed record is truncated")
        tag, blob = data[1:start], memoryview(data)[start:]
        if not any(
            hmac.compare_digest(tag, _mac_of(keyed, blob, execution_id, key, bound))
            for keyed in self._chained
        ):
            raise corrupt(
                "its signature does not match (it or one of the loop's delta records it "
                "covers was changed, deleted or moved from another record, or it was signed "
                "with another key)"
            )
        if blob[:1] != _MSGPACK_TAG:
            raise corrupt("it holds a pickle where only plain data belongs; it was not decoded")
        try:
            return _unpackb(blob[1:])
        except Exception as exc:  # msgpack raises many types for bad bytes
            raise corrupt(f"its msgpack data cannot be decoded ({_describe(exc)})") from exc

    def sign_blob(self, blob: bytes, *, execution_id: str, key: str) -> bytes:
        """`blob` (an unsigned blob `dumps` made) signed for its place, as
        `dumps` would have written it: for `migrate --sign`, which signs
        bytes it must never decode."""
        if self._mac is None:
            raise ValueError("Codec.sign_blob needs a secret key")
        return _SIGNED_TAG + self._sign(blob, execution_id, key) + blob

    def signature_holds(self, blob: bytes, *, execution_id: str, key: str) -> bool:
        """Whether a signed blob's signature is that of one of this codec's
        keys for this place, checked without decoding anything."""
        if blob[:1] != _SIGNED_TAG or len(blob) <= 1 + _MAC_SIZE:
            return False
        body = memoryview(blob)[1 + _MAC_SIZE :]
        return self._holds(blob[1 : 1 + _MAC_SIZE], body, execution_id, key)

    def _holds(
        self, signature: bytes, body: bytes | memoryview, execution_id: str, key: str
    ) -> bool:
        """Whether `signature` is one of this codec's keys' (the writing key
        or a fallback) over `body` at this place."""
        if self._mac is None:
            return False
        return any(
            hmac.compare_digest(signature, _sign(mac, body, execution_id, key))
            for mac in (self._mac, *self._fallbacks)
        )

    @staticmethod
    def is_chained(data: bytes) -> bool:
        return data[:1] == _CHAINED_TAG

    def _dumps_slow(self, value: Any, msgpack_error: Exception) -> bytes:
        if self._mode == "msgpack":
            if isinstance(msgpack_error, _NotPlain):
                reason = (
                    f"type {msgpack_error.type_name} is not plain data ({_PLAIN_TYPES}), "
                    "and the codec is in msgpack-only mode, which refuses pickle"
                )
            else:
                reason = f"msgpack cannot store it: {_describe(msgpack_error)}"
            raise UnserializableValue(reason) from msgpack_error
        return _PICKLE_TAG + _pickle(value)

    def dumps_linked(
        self,
        value: Any,
        links: Mapping[int, str],
        *,
        execution_id: str = "?",
        key: str = "?",
        sign: bool = True,
    ) -> bytes:
        """Pickle `value`, writing each object whose id is in `links` as a
        reference to that name instead of its contents. `loads(...,
        links=resolve)` puts back whatever `resolve(name)` gives there: a
        loop's restored values then point at the objects the frame holds
        now, which other objects (a csv.writer, a holder) may point at too."""
        if self._mode == "msgpack":
            raise UnserializableValue(
                "the values share objects with each other, which only pickle keeps, and the "
                "codec is in msgpack-only mode, which refuses pickle"
            )
        buffer = io.BytesIO()
        try:
            _LinkedPickler(buffer, links).dump(value)
        except Exception as exc:
            raise UnserializableValue(_describe(exc)) from exc
        blob = _LINKED_TAG + buffer.getvalue()
        if self._mac is None or not sign:
            return blob
        return _SIGNED_TAG + self._sign(blob, execution_id, key) + blob

    @staticmethod
    def is_pickle(blob: bytes) -> bool:
        """Whether a blob made by `dumps` holds a pickle (not msgpack)."""
        tag = (
            blob[1 + _MAC_SIZE]
            if blob[:1] == _SIGNED_TAG and len(blob) > 1 + _MAC_SIZE
            else blob[0]
        )
        return tag in (_PICKLE, _LINKED)

    def loads(
        self,
        data: bytes,
        *,
        execution_id: str = "?",
        key: str = "?",
        links: Callable[[str], Any] | None = None,
        verified: bool = False,
    ) -> Any:
        """Decode a blob made by `dumps` (or `dumps_linked`, given `links`);
        raises `CorruptCheckpoint` for anything else.

        `verified=True`: the caller has already authenticated these bytes
        through the record that covers them (a chained header), so an
        unsigned blob is accepted even with a key. Never pass it for bytes
        that no MAC covered."""
        if (self._mac is None or verified) and data[:1] == _MSGPACK_TAG:
            # The common case, taken 100,000 times when a long loop's list is
            # rebuilt on resume: no signature, plain data.
            try:
                return _unpackb(memoryview(data)[1:])
            except Exception:  # noqa: S110 - the full path below says what is wrong
                pass
        return self._loads(data, execution_id, key, links, verified=verified)

    def loads_plain(self, data: bytes, *, execution_id: str = "?", key: str = "?") -> Any:
        """Decode a blob that must hold plain data (msgpack), as the record
        headers `dumps_plain` writes: a pickle there is refused, never
        unpickled. For readers that promise to run no code from the store
        (progress in `status()`, `show`, `list`).

        A chained header is decoded without checking its MAC, which needs
        the delta records those readers do not load: its msgpack runs no
        code, and a resume checks it (`open_chained`) before trusting it."""
        if self._mac is None and data[:1] == _MSGPACK_TAG:
            return self.loads(data, execution_id=execution_id, key=key)
        if data[:1] == _CHAINED_TAG and len(data) > 1 + _CHAINED_MAC_SIZE:
            return self._loads(
                data[1 + _CHAINED_MAC_SIZE :], execution_id, key, verified=True, plain=True
            )
        return self._loads(data, execution_id, key, plain=True)

    def _loads(
        self,
        data: bytes,
        execution_id: str,
        key: str,
        links: Callable[[str], Any] | None = None,
        *,
        plain: bool = False,
        verified: bool = False,
    ) -> Any:

        def corrupt(reason: str) -> CorruptCheckpoint:
            return CorruptCheckpoint(execution_id, key, reason)

        if not data:
            raise corrupt("the record is empty")
        view = memoryview(data)
        tag = data[0]
        if tag == _SIGNED:
            if self._mac is None:
                raise corrupt(
                    "this record is signed; set RESUMABLE_SECRET_KEY to the key it was written with"
                )
            if len(data) <= 1 + _MAC_SIZE:
                raise corrupt("the signed record is truncated")
            signature = data[1 : 1 + _MAC_SIZE]
            view = view[1 + _MAC_SIZE :]
            if not self._holds(signature, view, execution_id, key):
                raise corrupt(
                    "its signature does not match (it was changed, moved from another record, "
                    "or signed with another key)"
                )
            tag = view[0]
        elif self._mac is not None and not verified:
            raise corrupt(
                "the record is not signed, and unsigned records are refused while this "
                "process signs (with a configured key, or a local store's per-user key): it "
                "was probably written by an older release, which did not sign "
                "records (or by a process without the key), unless someone tampered with it. "
                "If only your own processes have written this store, sign its records once "
                f"with `resumable migrate --sign {execution_id}`"
            )
        payload = view[1:]
        if tag == _MSGPACK:
            try:
                return _unpackb(payload)
            except Exception as exc:  # msgpack raises many types for bad bytes
                raise corrupt(f"its msgpack data cannot be decoded ({_describe(exc)})") from exc
        if tag in (_PICKLE, _LINKED):
            if plain:
                raise corrupt("it holds a pickle where only plain data belongs; it was not decoded")
            if self._mode == "msgpack":
                raise corrupt("it holds a pickle, and the codec is in msgpack-only mode")
            if tag == _LINKED and links is None:
                raise corrupt("it refers to a loop's frame, and only that loop can read it")
            try:
                if tag == _LINKED:
                    assert links is not None
                    return _LinkedUnpickler(io.BytesIO(payload), links).load()
                return pickle.loads(payload)
            except Exception as exc:  # unpickling can raise anything, even from user code
                classes = _pickled_classes(payload)
                named = f" (it holds {', '.join(classes)})" if classes else ""
                raise CorruptCheckpoint(
                    execution_id,
                    key,
                    f"its value cannot be unpickled{named}: {type(exc).__name__}: {_describe(exc)}",
                    "if a module or class is missing, run where the code that wrote the "
                    "record can be imported; if the class itself cannot be rebuilt from its "
                    "pickle, it cannot be stored: keep it out of carried variables and results",
                ) from exc
        raise corrupt(f"unknown format tag {bytes([tag])!r}")

    def _sign(self, blob: bytes | memoryview, execution_id: str, key: str) -> bytes:
        assert self._mac is not None
        return _sign(self._mac, blob, execution_id, key)


def _keyed(secret_key: bytes) -> hmac.HMAC:
    return hmac.new(secret_key, _MAC_DOMAIN, hashlib.sha256)


def _chain_keyed(secret_key: bytes) -> hashlib.blake2b:
    derived = hmac.digest(secret_key, _CHAINED_DOMAIN, "sha256")
    return hashlib.blake2b(key=derived, digest_size=_CHAINED_MAC_SIZE, person=_CHAINED_PERSON)


def _sign(keyed: hmac.HMAC, blob: bytes | memoryview, execution_id: str, key: str) -> bytes:
    mac = keyed.copy()  # the key is already absorbed: cheaper than hmac.new
    mac.update(_place(execution_id, key).encode())
    mac.update(blob)
    return mac.digest()


def _place(execution_id: str, key: str) -> str:
    # Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
    return f"{len(execution_id)}:{execution_id}{len(key)}:{key}"


def _mac_of(
    keyed: hashlib.blake2b, blob: bytes | memoryview, execution_id: str, key: str, bound: bytes
) -> bytes:
    # `bound` is length-prefixed too, so it cannot be shifted into the blob.
    mac = keyed.copy()
    mac.update(f"{_place(execution_id, key)}{len(bound)}:".encode())
    mac.update(bound)
    mac.update(blob)
    return mac.digest()


def _reduce_count(counter: itertools.count[Any]) -> tuple[Any, ...]:
    # "count(1005, 5)": the next number and the step, as the counter prints
    # them; numbers only (a counter of Decimals or Fractions prints those).
    inside = repr(counter)[len("count(") : -1]
    args = [ast.literal_eval(part.strip()) for part in inside.split(",")]
    return (itertools.count, tuple(args))


if sys.version_info >= (3, 12):
    # 3.12 deprecated and 3.14 removed pickling of itertools objects. An id
    # counter advanced in a loop body is state worth carrying; its repr says
    # all of it.
    copyreg.pickle(itertools.count, _reduce_count)


class _LinkedUnpickler(pickle.Unpickler):
    # A method, not an attribute: 3.13's C Unpickler makes the attribute
    # read-only.
    def __init__(self, file: io.BytesIO, links: Callable[[str], Any]) -> None:
        super().__init__(file)
        self._links = links

    def persistent_load(self, pid: Any) -> Any:
        return self._links(str(pid))


class _LinkedPickler(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, links: Mapping[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._links = links

    def persistent_id(self, obj: Any) -> str | None:
        return self._links.get(id(obj))


def _pickle(value: Any) -> bytes:
    data = _plain_pickle(value)
    if data is not None:
        return data
    try:
        pickled: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # TypeError, PicklingError, AttributeError, RecursionError...
        raise UnserializableValue(_describe(exc)) from exc
    return pickled


def _plain_pickle(value: Any) -> bytes | None:
    # Plain pickle first: 4-7x faster than cloudpickle for importable classes.
    # But pickle stores __main__ classes and functions by reference, and the
    # process that resumes has another __main__; cloudpickle stores those by
    # value (and honours register_pickle_by_value). The substring test may
    # also fire on user data that says "__main__"; that only costs speed.
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # lambdas, closures, local classes: cloudpickle's job
        return None
    if b"__main__" in data or cloudpickle.list_registry_pickle_by_value():
        return None
    return data


def _pickled_classes(payload: bytes | memoryview, limit: int = 4) -> list[str]:
    """The classes a pickle refers to (module.name), read without running it."""
    import pickletools

    found: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(bytes(payload)):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(arg))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
                if name not in found and not strings[-2].startswith(("copyreg", "builtins")):
                    found.append(name)
            elif opcode.name == "GLOBAL":
                name = str(arg).replace(" ", ".")
                if name not in found:
                    found.append(name)
            if len(found) >= limit:
                break
    except Exception:  # noqa: S110 - a damaged pickle: say nothing more
        pass
    return found


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
