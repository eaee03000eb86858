"""Execution ids: what the API accepts where an id enters it.

An id is a non-empty str of at most EXECUTION_ID_MAX characters that
encodes as UTF-8 (no lone surrogates: what Python makes of command-line
bytes that are not UTF-8). An id for a new execution must also be free of
control characters, so that nothing this library creates can forge lines
in a terminal. Ids read back from a store are not checked: a store someone
else wrote may hold any text.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

# Derived child ids are kept within the same bound (records.CHILD_ID_MAX).
EXECUTION_ID_MAX: Final = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHOWN = 60  # characters of a refused id quoted in the message


def check(value: object, where: str, *, new: bool = False) -> str:
    """`value` if it is a valid execution id, else ValueError naming `where`
    (the call or option it was given to) and what is wrong."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: an execution id is a non-empty str, got {value!r}")
    shown = repr(value[:_SHOWN]) + ("..." if len(value) > _SHOWN else "")
    if len(value) > EXECUTION_ID_MAX:
        raise ValueError(
            f"{where}: execution id {shown} has {len(value)} characters; "
            f"the most is {EXECUTION_ID_MAX}"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{where}: execution id {shown} is not valid UTF-8 (character {exc.start} is a "
            "lone surrogate, as bytes that are not UTF-8 become on a command line)"
        ) from None
    if new:
        found = _CONTROL.search(value)
        if found is not None:
            raise ValueError(
                f"{where}: execution id {shown} holds a control character "
                f"({found.group()!r} at {found.start()}); use printable text"
            )
    return value


def new_id() -> str:
    """A fresh execution id: 32 hex digits, random (uuid4)."""
    return uuid.uuid4().hex
