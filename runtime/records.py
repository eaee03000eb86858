"""Checkpoint records: a small plain-data header per helper position.

What a record holds, and under which key, is `wire`'s (the format); this
module encodes and checks records with the execution's codec, and names
the culprit when a value cannot be stored.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable
from typing import Any

# ReplayedFailure is also named here because records written before it moved
# to resumable.errors pickled it as resumable.runtime.records.ReplayedFailure.
from resumable.errors import (
    CheckpointError,
    CorruptCheckpoint,
    NonDeterminismError,
    ReplayedFailure,
)
from resumable.runtime import deltas, ids, wire
from resumable.runtime.context import ExecutionContext
from resumable.stores.codec import Codec, UnserializableValue


def dump_values(
    context: ExecutionContext,
    values: dict[str, Any],
    where: str,
    key: str,
    *,
    keep_sharing: bool = False,
    sign: bool = True,
) -> bytes:
    """Encode carried values for record `key`; on failure, name the culprit
    variable and type."""
    try:
        return context.codec.dumps(
            values,
            execution_id=context.execution_id,
            key=key,
            keep_sharing=keep_sharing,
            sign=sign,
        )
    except UnserializableValue as exc:
        for name, value in values.items():
            try:
                context.codec.dumps(value)
            except UnserializableValue as culprit:
                raise CheckpointError(where, name, type_name(value), culprit.reason) from None
        raise CheckpointError(where, ", ".join(values), "dict", exc.reason) from None


def is_pickle(blob: bytes) -> bool:
    return Codec.is_pickle(blob)


def verify(
    context: ExecutionContext, blob: bytes, values: dict[str, Any], where: str, key: str
) -> None:
    """Refuse a blob that does not decode (a value that pickles but does not
    unpickle), naming the variable, before it is written."""
    try:
        # Our own bytes, just made: signed or not, they are what we wrote.
        context.codec.loads(blob, execution_id=context.execution_id, key=key, verified=True)
    except CorruptCheckpoint as exc:
        plain = Codec()
        for name, value in values.items():
            try:
                plain.loads(plain.dumps(value))
            except (CorruptCheckpoint, UnserializableValue) as culprit:
                reason = culprit.reason if isinstance(culprit, CorruptCheckpoint) else str(culprit)
                raise CheckpointError(
                    where,
                    name,
                    type_name(value),
                    f"it pickles but cannot be unpickled ({reason})",
                    "The previous checkpoint is intact. HINT: leave it out with "
                    f"ignore=({name!r},) if its state does not matter (a progress bar, a "
                    "client), or carry the data it holds instead.",
                ) from None
        raise CheckpointError(where, ", ".join(values), "dict", exc.reason) from None


def dump_value(
    context: ExecutionContext, value: Any, where: str, what: str, key: str, *, sign: bool = True
) -> bytes:
    try:
        return context.codec.dumps(value, execution_id=context.execution_id, key=key, sign=sign)
    except UnserializableValue as exc:
        raise CheckpointError(where, what, type_name(value), exc.reason) from None


def dump_arguments(
    codec: Codec,
    name: str,
    function: Callable[..., Any],
    call: tuple[tuple[Any, ...], dict[str, Any]],
    execution_id: str,
    *,
    bound: bool,
) -> bytes:
    """The stored arguments of a new execution of `function` (display name
    `name`); CheckpointError naming the one that cannot be stored. `bound`:
    the first is the `self` of a method, which gets advice of its own."""
    args, kwargs = call
    try:
        return codec.dumps((args, kwargs), execution_id=execution_id, key="arguments")
    except UnserializableValue as exc:
        everything = exc
    for i, (argument, value) in enumerate(_named(function, args, kwargs)):
        try:
            codec.dumps(value)
        except UnserializableValue as culprit:
            kind = type_name(value)
            where = f"the start of {name}"
            if bound and i == 0:
                hint = _SELF_HINT.format(cls=kind, name=name)
                raise CheckpointError(where, argument, kind, culprit.reason, hint) from None
            raise CheckpointError(where, argument, kind, culprit.reason, _ARGUMENTS_HINT) from None
    raise CheckpointError(
        f"the start of {name}", "arguments", "tuple", everything.reason, _ARGUMENTS_HINT
    ) from None


def _named(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[tuple[str, Any]]:
    """The arguments by parameter name ("args[2]" where the signature cannot tell)."""
    try:
        signature = inspect.signature(function)
        arguments = signature.bind(*args, **kwargs).arguments
    except (TypeError, ValueError):  # a call that does not fit: Python says so when it runs
        return [*((f"args[{i}]", v) for i, v in enumerate(args)), *kwargs.items()]
    named: list[tuple[str, Any]] = []
    for name, value in arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named += [(f"{name}[{i}]", item) for i, item in enumerate(value)]
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named += list(value.items())
        else:
            named.append((name, value))
    return named


_ARGUMENTS_HINT = (
    "Nothing was started: the arguments are stored with the execution, so that resume() "
    "can call the function again in another process. HINT: pass plain data or picklable "
    "objects (ids, paths, settings), and create clients, connections and files inside "
    "the function."
)
_SELF_HINT = (
    "Nothing was started: a @resumable method stores `self` with its arguments, so that "
    "resume() can rebuild the {cls} object in another process, and this one cannot be "
    "stored. HINT: make {name} a module-level @resumable function that takes the "
    "picklable parts (ids, URLs, settings) and creates the client inside it; or make "
    "{cls} picklable, with __getstate__/__setstate__ (or __reduce__) that leave the "
    "client out and rebuild it."
)


def load_value(context: ExecutionContext, data: bytes, key: str, *, verified: bool = False) -> Any:
    """`verified`: see `Codec.loads`; only for bytes a checked chained header covers."""
    return context.codec.loads(data, execution_id=context.execution_id, key=key, verified=verified)


def seal(context: ExecutionContext, header: dict[str, Any] | list[Any], key: str) -> bytes:
    """Encode the header of record `key`: plain data we built ourselves (user
    values inside it are already codec blobs), so the exactness check is
    skipped."""
    return context.codec.dumps_plain(header, execution_id=context.execution_id, key=key)


def read(
    context: ExecutionContext, key: str, kind: str, site: str, where: str
) -> dict[str, Any] | None:
    """The record at `key`, checked to be the same kind of helper at the same
    site that the code reaches now (guarantee §3.5)."""
    return read_loop(context, key, kind, site, where)[0]


def read_loop(
    context: ExecutionContext, key: str, kind: str, site: str, where: str
) -> tuple[dict[str, Any] | None, bool]:
    """As `read`, and whether the header was a chained one whose MAC was
    checked against the loop's delta records (`Codec.open_chained`): only
    then are its carried values and deltas, which a chained writer leaves
    unsigned, decoded as verified. A per-record signed header (format 3,
    or `migrate --sign`) leaves each of them to its own signature."""
    data = context.records.get(key)
    if data is None:
        return None, False
    chained = Codec.is_chained(data)
    if chained:
        header = _open_chained(context, key, data)
    else:
        # A header is plain data: never unpickled, signed or not.
        header = wire.check_header(context.execution_id, key, load_header(context, data, key))
        if header[wire.KIND] == wire.LOOP:
            header = _with_layout(context, key, header)
    if header[wire.KIND] != kind or header.get(wire.SITE) != site:
        found = header.get(wire.WHERE) or _location(context, key)
        raise NonDeterminismError(
            context.execution_id,
            f"position {key}",
            f"{header[wire.KIND]} {header.get(wire.SITE)} ({found})",
            f"{kind} {site} ({where})",
        )
    return header, chained


def load_header(context: ExecutionContext, data: bytes, key: str) -> Any:
    """A header or layout record: plain data, a pickle refused (`Codec.loads_plain`)."""
    return context.codec.loads_plain(data, execution_id=context.execution_id, key=key)


# -- child executions ------------------------------------------------------------

# Derived child ids longer than this many characters end in a digest instead.
CHILD_ID_MAX = ids.EXECUTION_ID_MAX
_DIGITS = re.compile(r"\d+")


def child_id(parent_id: str, position: str) -> str:
    """The id of the child execution called at `position` of `parent_id`.

    "<parent id>/<position>", the position written with its numbers only,
    dot-separated: "#3" (the 4th helper call of the function) gives
    "nightly/3", and "#0[5]/#1" (the 2nd call in iteration 5 of the loop at
    #0) gives "nightly/0.5.1"; a grandchild is "nightly/0.5.1/2". Readable,
    and safe to paste into a shell unquoted (no `#`, `[` or `]`). An id
    that would pass CHILD_ID_MAX characters keeps its first 150 and ends in
    "~" and a digest of the whole, so ids stay short however deep they nest.
    """
    if wire.is_position(position):
        tail = ".".join(_DIGITS.findall(position))
    else:  # a position of another shape: unique, if less readable
        tail = "~" + _digest(position)
    derived = f"{parent_id}/{tail}"
    if len(derived) <= CHILD_ID_MAX:
        return derived
    return f"{derived[:150]}~{_digest(derived)}"


def _digest(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=10).hexdigest()


def child_record(context: ExecutionContext, key: str, site: str, where: str, child: str) -> bytes:
    """The parent's record of a child execution at `key`: which function
    (the site), and the child's id. The child's outcome lives in the child's
    own execution record, not here."""
    return seal(context, wire.child_header(site, where, child), key)


def _open_chained(context: ExecutionContext, key: str, data: bytes) -> dict[str, Any]:
    """A format 4 loop header, checked against the raw delta records its MAC
    covers before anything of them is decoded. Which deltas those are is read
    from the header itself first, as plain data (msgpack runs no code); a
    header changed to name others then fails the check."""
    execution_id = context.execution_id
    peek = wire.check_header(
        execution_id, key, context.codec.loads_plain(data, execution_id=execution_id, key=key)
    )
    described = wire.LoopHeader.parse(_with_layout(context, key, peek)).described()
    bound = deltas.bound(context.records, execution_id=execution_id, key=key, described=described)
    header = context.codec.open_chained(data, bound, execution_id=execution_id, key=key)
    return _with_layout(context, key, wire.check_header(execution_id, key, header))


def _with_layout(context: ExecutionContext, key: str, header: dict[str, Any]) -> dict[str, Any]:
    """A loop header with its layout record's fields (`wire.with_layout`)."""
    layout_key = wire.location_key(key)
    data = context.records.get(layout_key)
    layout = None if data is None else load_header(context, data, layout_key)
    return wire.with_layout(context.execution_id, key, header, layout)


def _location(context: ExecutionContext, key: str) -> str:
    """A loop's file:line lives in its layout record."""
    data = context.records.get(wire.location_key(key))
    return wire.loop_location(context.execution_id, key, data, context.codec)


def type_name(value: object) -> str:
    """The value's type for messages: "module.Class", builtins bare ("int")."""
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def dump_outcome(  # noqa: PLR0917
    context: ExecutionContext,
    value: Any,
    error: BaseException | None,
    where: str,
    what: str,
    key: str,
) -> bytes:
    """A step's or item's outcome for record `key`: b"r" + result, or b"e" +
    the exception."""
    if error is None:
        return wire.OUTCOME_RESULT + dump_value(context, value, where, what, key)
    execution_id = context.execution_id
    try:
        return wire.OUTCOME_ERROR + context.codec.dumps(error, execution_id=execution_id, key=key)
    except UnserializableValue:
        stand_in = ReplayedFailure(type_name(error), str(error))
        blob = context.codec.dumps(stand_in, execution_id=execution_id, key=key)
        return wire.OUTCOME_ERROR + blob


def load_outcome(
    context: ExecutionContext, data: bytes, key: str
) -> tuple[Any, BaseException | None]:
    kind, blob = data[:1], data[1:]
    value = load_value(context, blob, key)
    if kind == wire.OUTCOME_RESULT:
        return value, None
    if kind == wire.OUTCOME_ERROR and isinstance(value, BaseException):
        return None, value
    raise CorruptCheckpoint(context.execution_id, key, "not a recorded outcome")
