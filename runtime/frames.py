"""Read and write local variables of a live (suspended or running) frame.

CPython 3.13 (PEP 667) made `frame.f_locals` a write-through proxy for
function frames, cells included. On 3.11 and 3.12 `f_locals` is a snapshot
dict; writes reach the frame only through `PyFrame_LocalsToFast`, which also
updates cell contents. Checked on 3.11.7, 3.12.1 and 3.13.0.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any

_MISSING = object()


def read_locals(frame: FrameType, names: Iterable[str]) -> dict[str, Any]:
    """The current values of `names` in `frame`; unbound names are left out."""
    local_vars = frame.f_locals  # 3.11/3.12: a fresh snapshot of fast locals and cells
    values = {}
    for name in names:
        value = local_vars.get(name, _MISSING)
        if value is not _MISSING:
            values[name] = value
    return values


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
