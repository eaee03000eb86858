"""Read and write the variables of a live (suspended or running) frame.

CPython 3.13 (PEP 667) made `frame.f_locals` a write-through proxy for
function frames, cells included; 3.14 and 3.15 keep it. On 3.11 and 3.12
`f_locals` is a snapshot dict; writes reach the frame only through
`PyFrame_LocalsToFast`, which also updates cell contents. Checked on 3.11.7,
3.12.1, 3.13.0, 3.14.10 and 3.15.2.

Carried globals are named "$name" and live in the frame's `f_globals`.

A restored value goes back *into the object the frame holds now* when that
object is the one the loop started with (the code before the loop has just
rebuilt it, and other objects may point at it: a `csv.writer` at its
buffer, a holder at its list), so those links survive a resume. Otherwise
the name is rebound to the restored object.
"""

from __future__ import annotations

import collections
import ctypes
import io
import sys
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any

from resumable.runtime import kinds

_MISSING = object()
MISSING = _MISSING  # what state_of gives for a type it cannot restore in place


def read_locals(frame: FrameType, names: Iterable[str]) -> dict[str, Any]:
    """The current values of `names` ("$x": the global x) in `frame`;
    unbound names are left out."""
    local_vars = frame.f_locals  # 3.11/3.12: a fresh snapshot of fast locals and cells
    values = {}
    for name in names:
        if name[0] == "$":
            value = frame.f_globals.get(name[1:], _MISSING)
        else:
            value = local_vars.get(name, _MISSING)
        if value is not _MISSING:
            values[name] = value
    return values


def restore(frame: FrameType, values: Mapping[str, Any], in_place: Iterable[str] = ()) -> None:
    """Bind each name in `frame` to its restored value; names in `in_place`
    whose current object can take the restored state are updated in place
    instead."""
    in_place = set(in_place)
    current = read_locals(frame, in_place) if in_place else {}
    rebind: dict[str, Any] = {}
    for name, value in values.items():
        now = current.get(name, _MISSING)
        if name in in_place and now is not _MISSING and now is not value and _into(now, value):
            continue
        if name[0] == "$":
            frame.f_globals[name[1:]] = value
        else:
            rebind[name] = value
    if rebind:
        write_locals(frame, rebind)


def state_of(value: Any) -> Any:
    """What `set_state` needs to give an object of the same type `value`'s
    contents in place; _MISSING for types it cannot do that for."""
    kind = type(value)
    if kinds.by_class(value) != kinds.OTHER:
        return _MISSING
    if kind is list or kind is set:
        return kind(value)
    if kind is bytearray:
        return bytes(value)
    if kind in (dict, collections.OrderedDict, collections.Counter):
        return dict(value)
    if kind is collections.defaultdict:
        return (value.default_factory, dict(value))
    if kind is collections.deque:
        return (list(value), value.maxlen)
    if kind is io.StringIO or kind is io.BytesIO:
        return (value.getvalue(), value.tell())
    if _plain_object(value):
        return dict(value.__dict__)
    return _MISSING


def set_state(target: Any, state: Any) -> bool:
    """Give `target` the contents `state_of` took from an object of its type."""
    kind = type(target)
    if kind is list or kind is bytearray:
        target[:] = state
    elif kind is set or kind in (dict, collections.OrderedDict, collections.Counter):
        target.clear()
        target.update(state)
    elif kind is collections.defaultdict:
        target.default_factory, items = state
        target.clear()
        target.update(items)
    elif kind is collections.deque:
        items, maxlen = state
        if target.maxlen != maxlen:
            return False
        target.clear()
        target.extend(items)
    elif kind is io.StringIO or kind is io.BytesIO:
        text, position = state
        target.seek(0)
        target.truncate()
        target.write(text)
        target.seek(position)
    elif _plain_object(target):
        target.__dict__.clear()
        target.__dict__.update(state)
    else:
        return False
    return True


def _into(target: Any, saved: Any) -> bool:
    """Give `target` the state of `saved` (same type); False if it cannot."""
    kind = type(target)
    if kind is not type(saved) or kinds.by_class(target) != kinds.OTHER:
        return False
    if kind is list or kind is bytearray:
        target[:] = saved
    elif kind in (dict, collections.OrderedDict, collections.Counter):
        target.clear()
        target.update(saved)
    elif kind is collections.defaultdict:
        target.clear()
        target.update(saved)
        target.default_factory = saved.default_factory
    elif kind is set:
        target.clear()
        target.update(saved)
    elif kind is collections.deque:
        if target.maxlen != saved.maxlen:
            return False
        target.clear()
        target.extend(saved)
    elif kind is io.StringIO or kind is io.BytesIO:
        target.seek(0)
        target.truncate()
        target.write(saved.getvalue())
        target.seek(saved.tell())
    elif _plain_object(target):
        target.__dict__.clear()
        target.__dict__.update(saved.__dict__)
    else:
        return False
    return True


# What a plain Python instance adds to `object` at the C level: at most the
# pointers to its __dict__ and weak references (3.11: 24 bytes; 3.12+ keeps
# them before the object: 16).
_PLAIN_SIZE = object.__basicsize__ + 2 * ctypes.sizeof(ctypes.c_void_p)


def _plain_object(value: Any) -> bool:
    """An instance of a Python class keeping its state in __dict__ only: no
    slots, and no base written in C with state of its own (random.Random
    keeps its generator's state in C, outside __dict__: its instances are
    2,500 bytes at the C level)."""
    kind = type(value)
    if kind.__module__ == "builtins" or not hasattr(value, "__dict__"):
        return False
    if kind.__basicsize__ > _PLAIN_SIZE:
        return False
    return all("__slots__" not in vars(base) for base in kind.__mro__[:-1])


if sys.version_info >= (3, 13):

    def write_locals(frame: FrameType, values: Mapping[str, Any]) -> None:
        """Bind each name in `frame` (a cell's contents for cell variables)."""
        proxy = frame.f_locals
        for name, value in values.items():
            proxy[name] = value

else:
    _locals_to_fast = ctypes.pythonapi.PyFrame_LocalsToFast
    _locals_to_fast.argtypes = [ctypes.py_object, ctypes.c_int]
    _locals_to_fast.restype = None

    def write_locals(frame: FrameType, values: Mapping[str, Any]) -> None:
        """Bind each name in `frame` (a cell's contents for cell variables)."""
        snapshot = frame.f_locals
        snapshot.update(values)
        # clear=0: names missing from the snapshot keep their fast-local value.
        _locals_to_fast(frame, 0)
