"""Is a loop's iterable giving the same items, in the same order, on replay?

A resumed loop skips the items it already finished by position, so the
iterable must give the same items in the same order in the resuming
process. Two checks keep that honest:

* `hash_ordered` refuses, before the first iteration, an iterable whose order
  depends on string hashing (a set or frozenset of str or bytes): Python
  randomises those hashes per process (PYTHONHASHSEED), so another process
  iterates it in another order.
* `digest` gives a small, process-independent fingerprint of an item; each
  checkpoint records the digest of the last finished item, and the resumed
  loop compares it with the item it finds at that position.

Digests cover plain data exactly (str, bytes, numbers, tuples, lists,
dicts, dataclasses, pydantic models); for other objects only their type is
compared (their repr may hold a memory address, which differs per process).
"""

from __future__ import annotations

import dataclasses
import sys
import zlib
from typing import Any

_TEXT_LIMIT = 4096  # characters of a string that go into its digest (plus its length)


def digest(item: Any) -> int:
    """A 32-bit fingerprint of `item` that is the same in every process."""
    # Written at every checkpoint: the common items take a short path.
    kind = type(item)
    if kind is int:
        return int(item) & 0xFFFFFFFF
    if kind is str and len(item) <= _TEXT_LIMIT:
        return zlib.crc32(item.encode("utf-8", "surrogatepass"))
    parts: list[bytes] = []
    _feed(item, parts, 0)
    return zlib.crc32(b"".join(parts))


def _feed(item: Any, parts: list[bytes], depth: int) -> None:
    kind = type(item)
    if kind is str:
        parts.append(b"s%d:" % len(item))
        parts.append(item[:_TEXT_LIMIT].encode("utf-8", "surrogatepass"))
    elif kind is bytes:
        parts.append(b"b%d:" % len(item))
        parts.append(item[:_TEXT_LIMIT])
    elif kind is int or kind is bool:
        parts.append(b"i%d" % item)
    elif kind is float:
        parts.append(b"f" + repr(item).encode())
    elif item is None:
        parts.append(b"N")
    elif depth > 3:
        parts.append(b"~")
    elif kind is tuple or kind is list:
        parts.append(b"(" if kind is tuple else b"[")
        for value in item[:64]:
            _feed(value, parts, depth + 1)
        parts.append(b")")
    elif kind is dict:
        parts.append(b"{")
        for key, value in list(item.items())[:64]:
            _feed(key, parts, depth + 1)
            _feed(value, parts, depth + 1)
        parts.append(b"}")
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        parts.append(_type_name(item))
        for field in dataclasses.fields(item)[:64]:
            _feed(getattr(item, field.name, None), parts, depth + 1)
    elif hasattr(type(item), "model_fields") and hasattr(item, "__dict__"):  # pydantic
        parts.append(_type_name(item))
        for key, value in list(vars(item).items())[:64]:
            _feed(key, parts, depth + 1)
            _feed(value, parts, depth + 1)
    else:
        parts.append(_type_name(item))


def _type_name(item: Any) -> bytes:
    kind = type(item)
    return f"<{kind.__module__}.{kind.__qualname__}>".encode()


def hash_ordered(iterable: Any) -> str | None:
    """Why `iterable`'s order would differ in another process, or None."""
    if not sys.flags.hash_randomization:
        return None
    if isinstance(iterable, set | frozenset):
        kinds = {type(item) for item in iterable}
        hashed = sorted(k.__name__ for k in kinds if k in (str, bytes))
        if hashed:
            return f"a {type(iterable).__name__} of {' and '.join(hashed)}"
    if type(iterable).__name__ in ("dict_keys", "dict_values", "dict_items"):
        return None  # dicts keep insertion order
    return None
