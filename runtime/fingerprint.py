"""A fingerprint of a function's bytecode, and a readable account of changes.

Line numbers are left out (moving code or editing comments is not a change);
the bytecode, names, constants and nested functions are in. The fingerprint
is a small JSON document so that a mismatch can say what changed.
"""

from __future__ import annotations

import dis
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any


def _feed(digest: Any, code: CodeType, docstring: object) -> None:
    digest.update(code.co_code)
    for part in (code.co_names, code.co_varnames, code.co_cellvars, code.co_freevars):
        digest.update(repr(part).encode())
    for index, const in enumerate(code.co_consts):
        if isinstance(const, CodeType):
            _feed(digest, const, None)
        elif not (index == 0 and docstring is not None and const == docstring):
            digest.update(repr(const).encode())


def fingerprint(function: Callable[..., Any], version: str | None = None) -> str:
    code: CodeType = function.__code__
    digest = hashlib.sha256()
    _feed(digest, code, function.__doc__)
    return json.dumps(
        {
            "sha": digest.hexdigest()[:32],
            "py": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "version": version,
            "names": sorted(set(code.co_names)),
            "locals": list(code.co_varnames),
            "loops": sum(1 for _ in _async_fors(code)),
        },
        separators=(",", ":"),
    )


def _async_fors(code: CodeType) -> Iterator[dis.Instruction]:
    return (ins for ins in dis.get_instructions(code) if ins.opname == "GET_AITER")


def same(old: str, new: str) -> bool:
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return old == new
    return bool(a.get("sha") == b.get("sha") and a.get("version") == b.get("version"))


def describe_change(old: str, new: str) -> str:
    try:
        a, b = json.loads(old), json.loads(new)
    except ValueError:
        return "the stored fingerprint is unreadable"
    changes = []
    if a.get("version") != b.get("version"):
        changes.append(f"version {a.get('version')!r} -> {b.get('version')!r}")
    if a.get("py") != b.get("py"):
        changes.append(f"Python {a.get('py')} -> {b.get('py')} (bytecode differs between versions)")
    for field, label in (("names", "global/attribute names"), ("locals", "local variables")):
        added = sorted(set(b.get(field, ())) - set(a.get(field, ())))
        removed = sorted(set(a.get(field, ())) - set(b.get(field, ())))
        if added:
            changes.append(f"{label} added: {', '.join(added)}")
        if removed:
            changes.append(f"{label} removed: {', '.join(removed)}")
    if a.get("loops") != b.get("loops"):
        changes.append(f"async for loops {a.get('loops')} -> {b.get('loops')}")
    if not changes:
        changes.append("the bytecode differs (an expression, constant or statement changed)")
    return "; ".join(changes)
