"""Checkpoint records: a small plain-data header per helper position.

Every record is one codec blob (signed when a secret key is set) holding a
dict with at least "k" (kind: loop, step, map, gather), "s" (the site: which
helper, stable across edits elsewhere) and "w" (file:line, for messages).
User values inside it are nested codec blobs, so a record's header can be
read (progress, `show`) without unpickling anything of the user's.
"""

from __future__ import annotations

from typing import Any

from resumable.errors import CheckpointError, CorruptCheckpoint, NonDeterminismError
from resumable.runtime.context import ExecutionContext
from resumable.stores.codec import Codec, UnserializableValue


def dump_values(
    context: ExecutionContext,
    values: dict[str, Any],
    where: str,
    key: str,
    *,
    keep_sharing: bool = False,
) -> bytes:
    """Encode carried values for record `key`; on failure, name the culprit
    variable and type."""
    try:
        return context.codec.dumps(
            values, execution_id=context.execution_id, key=key, keep_sharing=keep_sharing
        )
    except UnserializableValue as exc:
        for name, value in values.items():
            try:
                context.codec.dumps(value)
            except UnserializableValue as culprit:
                raise CheckpointError(where, name, _type_name(value), culprit.reason) from None
        raise CheckpointError(where, ", ".join(values), "dict", exc.reason) from None


def is_pickle(blob: bytes) -> bool:
    return Codec.is_pickle(blob)


def verify(context: ExecutionContext, blob: bytes, values: dict[str, Any], where: str, key: str) -> None:
    """Refuse a blob that does not decode (a value that pickles but does not
    unpickle), naming the variable, before it is written."""
    try:
        context.codec.loads(blob, execution_id=context.execution_id, key=key)
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
                    _type_name(value),
                    f"it pickles but cannot be unpickled ({reason})",
                    f"leave it out with ignore=({name!r},) if its state does not matter "
                    "(a progress bar, a client), or carry the data it holds instead",
                ) from None
        raise CheckpointError(where, ", ".join(values), "dict", exc.reason) from None


def dump_value(context: ExecutionContext, value: Any, where: str, what: str, key: str) -> bytes:
    try:
        return context.codec.dumps(value, execution_id=context.execution_id, key=key)
    except UnserializableValue as exc:
        raise CheckpointError(where, what, _type_name(value), exc.reason) from None


def load_value(context: ExecutionContext, data: bytes, key: str) -> Any:
    return context.codec.loads(data, execution_id=context.execution_id, key=key)


def seal(context: ExecutionContext, header: dict[str, Any], key: str) -> bytes:
    """Encode the header of record `key`: plain data we built ourselves (user
    values inside it are already codec blobs), so the exactness check is
    skipped."""
    return context.codec.dumps_plain(header, execution_id=context.execution_id, key=key)


def read(
    context: ExecutionContext, key: str, kind: str, site: str, where: str
) -> dict[str, Any] | None:
    """The record at `key`, checked to be the same kind of helper at the same
    site that the code reaches now (guarantee §3.5)."""
    data = context.records.get(key)
    if data is None:
        return None
    header = load_value(context, data, key)
    if not isinstance(header, dict) or "k" not in header:
        raise CorruptCheckpoint(context.execution_id, key, "not a checkpoint record")
    if header["k"] != kind or header.get("s") != site:
        raise NonDeterminismError(
            context.execution_id,
            f"position {key}",
            f"{header['k']} {header.get('s')} ({header.get('w') or _location(context, key)})",
            f"{kind} {site} ({where})",
        )
    return header


def _location(context: ExecutionContext, key: str) -> str:
    """A loop's file:line lives in a record of its own (written once)."""
    data = context.records.get(f"{key}@")
    if data is None:
        return "?"
    return str(load_value(context, data, f"{key}@").get("w", "?"))


def _type_name(value: object) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


class ReplayedFailure(Exception):
    """Stands in for a recorded exception that could not be pickled."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message} (recorded; the original could not be pickled)")
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message))


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
        return b"r" + dump_value(context, value, where, what, key)
    place = {"execution_id": context.execution_id, "key": key}
    try:
        return b"e" + context.codec.dumps(error, **place)
    except UnserializableValue:
        stand_in = ReplayedFailure(_type_name(error), str(error))
        return b"e" + context.codec.dumps(stand_in, **place)


def load_outcome(
    context: ExecutionContext, data: bytes, key: str
) -> tuple[Any, BaseException | None]:
    kind, blob = data[:1], data[1:]
    value = load_value(context, blob, key)
    if kind == b"r":
        return value, None
    if kind == b"e" and isinstance(value, BaseException):
        return None, value
    raise CorruptCheckpoint(context.execution_id, key, "not a recorded outcome")
