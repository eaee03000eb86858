"""Sign the records of a store written without a key (`resumable migrate --sign`).

Releases before signing was the default wrote unsigned blobs; a process
with a secret key refuses them (they could have been written by anyone who
can write the store). `sign_unsigned` is the explicit step that brings such
a store over: the user states that the store is theirs, and every unsigned
blob is rewritten exactly as a signing writer of the same format would have
written it, so the ordinary signed read path accepts it.

What it never does:

* decode a pickle: a user value is signed as the bytes it is. Headers are
  decoded with msgpack only (`Codec.loads_plain` refuses pickles), to reach
  the user-value blobs nested in them (signed too, with the header's key);
* sign what it cannot classify: a record of a key or kind this release does
  not write is left as it is and reported (execution, key, why);
* touch a record signed with another key (reported), or re-sign one that is
  signed already (so running it twice changes nothing the second time);
* write under a live owner: like `gc`, it takes the execution's lease, and
  one a live process holds is skipped and reported.

Which blob is signed with which place (`Codec.dumps(..., key=...)`) is read
off the writers: records.py (steps' and items' outcomes, arguments), loop.py
(a loop's carried values), deltas.py (deltas, chunks), engine.py (result,
error). `wire.py` documents the record kinds and header fields.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from resumable import _config
from resumable.errors import (
    CorruptCheckpoint,
    ExecutionLocked,
    ExecutionNotFound,
    LeaseLost,
    describe_owner,
)
from resumable.runtime import deltas, engine, wire
from resumable.runtime.registry import REGISTRY
from resumable.stores.base import EVERYTHING, ExecutionRecord, ExecutionUpdate, Store
from resumable.stores.codec import Codec

__all__ = ["ExecutionMigration", "MigrationReport", "RecordProblem", "sign_unsigned"]

Outcome = Literal["signed", "unchanged", "skipped", "not_found"]

_SIGNED = b"s"
_VALUE_TAGS = (b"m", b"p", b"l")  # msgpack, pickle, linked pickle (codec.py)
_OUTCOME_TAGS = (wire.OUTCOME_RESULT, wire.OUTCOME_ERROR)
# The user-value blobs nested in each kind of header, by wire name. Kinds
# not listed hold none (a journaled value's VALUE is plain data, not a
# blob: _journal.py); a kind this release does not know is refused.
_NESTED: dict[str, tuple[str, ...]] = {
    wire.LOOP: (wire.CARRIED,),
    wire.STEP: (wire.RESULT, wire.ERROR),
    wire.MAP: (),
    wire.GATHER: (),
    wire.JOURNALED: (),
    wire.SLEEP: (),
    wire.CHILD_KIND: (),
}
# The execution record's blobs and the place each is signed with (engine.py).
_RECORD_BLOBS = (("args", "arguments"), ("result", "result"), ("error", "error"))
_LEASE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """A record left as it was, and why (`key` is a checkpoint key, or
    "arguments", "result" or "error" for the execution record's blobs)."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class ExecutionMigration:
    """What `sign_unsigned` did with one execution.

    `outcome`: "signed" (`signed` records rewritten, or that would be with
    dry_run), "unchanged" (nothing unsigned), "skipped" (a live process
    holds it: `reason` says who; nothing written), "not_found". `problems`:
    records left as they were (signed with another key, or not a record
    this release writes); the execution may still be refused when a resume
    reads one of them."""

    execution_id: str
    outcome: Outcome
    signed: int = 0
    problems: tuple[RecordProblem, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MigrationReport:
    executions: tuple[ExecutionMigration, ...]
    dry_run: bool = False

    @property
    def complete(self) -> bool:
        """Every execution asked for is now fully signed."""
        return all(e.outcome in ("signed", "unchanged") and not e.problems for e in self.executions)


async def sign_unsigned(
    store: Store | str | None = None,
    execution_ids: Iterable[str] | None = None,
    *,
    dry_run: bool = False,
) -> MigrationReport:
    """Sign, with the configured secret key, every unsigned record of the
    given executions (and their child executions), or of every execution
    in the store when `execution_ids` is None.

    Only for a store that only you (your own processes) have written: an
    unsigned record is exactly what signing protects against, and this signs
    whatever it finds, pickles included (without running them). Each
    execution is rewritten in one transaction under its lease; one a live
    process holds is skipped. Raises ValueError when no key is configured.
    """
    chosen = _config.resolve_store(store)
    # The key the store's runs sign with: the configured one, else the
    # store's default (the per-user key of a SQLite file).
    codec = _config.codec_for(chosen)
    if not codec.signed:
        raise ValueError(
            "signing needs a secret key: set RESUMABLE_SECRET_KEY (or configure(secret_key=...)) "
            "to the key the store's processes will use, or leave out "
            "RESUMABLE_ALLOW_UNSIGNED; `resumable keygen` makes one"
        )
    found = await _executions(chosen, execution_ids)
    done = [
        await _migrate(chosen, codec, record, dry_run)
        if isinstance(record, ExecutionRecord)
        else ExecutionMigration(record, "not_found")
        for record in found
    ]
    return MigrationReport(tuple(done), dry_run)


async def _executions(store: Store, ids: Iterable[str] | None) -> list[ExecutionRecord | str]:
    """The executions to migrate (an id not in the store stays a str). A
    given id brings its child executions along: resuming the parent
    resumes them, and they were written by the same release."""
    if ids is None:
        everything = await store.list(limit=EVERYTHING)
        return [*sorted(everything, key=lambda r: r.created_at)]
    found: list[ExecutionRecord | str] = []
    seen: set[str] = set()
    pending = list(dict.fromkeys(ids))
    while pending:
        execution_id = pending.pop(0)
        if execution_id in seen:
            continue
        seen.add(execution_id)
        record = await store.get(execution_id)
        if record is None:
            found.append(execution_id)
            continue
        found.append(record)
        children = await store.list(parent_id=execution_id, limit=EVERYTHING)
        pending += [child.id for child in reversed(children)]
    return found


async def _migrate(
    store: Store, codec: Codec, record: ExecutionRecord, dry_run: bool
) -> ExecutionMigration:
    if dry_run:
        # Nothing is taken or written: the plan of what is stored now.
        if REGISTRY.owner_lives(record):
            return _skipped(record)
        plan = _plan(codec, record, await store.load(record.id))
        return plan.result(record.id)
    try:
        lease = await engine.acquire(store, record, _LEASE_SECONDS)
    except ExecutionLocked:
        return _skipped(record)
    except ExecutionNotFound:
        return ExecutionMigration(record.id, "not_found")
    try:
        # Read again under the lease: what is signed is what is stored now.
        current = await store.get(record.id)
        if current is None:
            return ExecutionMigration(record.id, "not_found")
        checkpoints = await store.load(record.id)
        plan = _plan(codec, current, checkpoints)
        if plan.changed:
            # One transaction: the record's blobs and every checkpoint
            # record (replace_checkpoints is the whole set, changed or not).
            await store.update(
                lease,
                ExecutionUpdate(
                    args=plan.blobs.get("args"),
                    result=plan.blobs.get("result"),
                    error=plan.blobs.get("error"),
                    replace_checkpoints={**checkpoints, **plan.puts},
                ),
            )
        return plan.result(record.id)
    except LeaseLost:
        # Our lease expired and another process took the execution: the
        # fenced update wrote nothing.
        return _skipped(record)
    finally:
        with contextlib.suppress(ExecutionLocked, ExecutionNotFound):  # LeaseLost: not ours
            await store.release(lease)
        REGISTRY.held.discard(record.id)


def _skipped(record: ExecutionRecord) -> ExecutionMigration:
    return ExecutionMigration(
        record.id,
        "skipped",
        reason=f"a live process holds it ({describe_owner(record.owner)}); "
        "run this again once it has stopped",
    )


# -- the plan: what each record becomes ------------------------------------------


@dataclass(slots=True)
class _Plan:
    blobs: dict[str, bytes] = field(default_factory=dict)  # execution record field -> signed
    puts: dict[str, bytes] = field(default_factory=dict)  # checkpoint key -> signed
    problems: list[RecordProblem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.blobs or self.puts)

    def result(self, execution_id: str) -> ExecutionMigration:
        return ExecutionMigration(
            execution_id,
            "signed" if self.changed else "unchanged",
            signed=len(self.blobs) + len(self.puts),
            problems=tuple(self.problems),
        )


class _Refused(Exception):
    """A record left as it was; the message says why."""


def _plan(codec: Codec, record: ExecutionRecord, checkpoints: Mapping[str, bytes]) -> _Plan:
    signer = _Signer(codec, record.id, record.format, checkpoints)
    plan = _Plan()
    if record.format > wire.FORMAT_VERSION:
        # Its records may hold blobs where this release knows none: sign nothing.
        reason = f"written in record format {record.format}, newer than this release's"
        plan.problems.append(RecordProblem("*", reason))
        return plan
    for name, place in _RECORD_BLOBS:
        blob: bytes | None = getattr(record, name)
        if blob is None:
            continue
        try:
            signed = signer.value(blob, place)
        except _Refused as exc:
            plan.problems.append(RecordProblem(place, str(exc)))
            continue
        if signed is not None:
            plan.blobs[name] = signed
    for key in sorted(checkpoints, key=wire.position_order):
        try:
            signed = signer.record(key, checkpoints[key])
        except _Refused as exc:
            plan.problems.append(RecordProblem(key, str(exc)))
            continue
        if signed is not None:
            plan.puts[key] = signed
    return plan


class _Signer:
    """Signs the records of one execution. Each method returns the signed
    bytes, None when the record is signed already (with a key this process
    reads), or raises _Refused."""

    def __init__(
        self, codec: Codec, execution_id: str, format: int, checkpoints: Mapping[str, bytes]
    ) -> None:
        self._codec = codec
        self._id = execution_id
        # Format 4 authenticates a loop iteration with one chained MAC on its
        # header, over the raw delta records (wire.CHAINED_FORMAT).
        self._chained = format >= wire.CHAINED_FORMAT
        self._checkpoints = checkpoints
        # Reads plain data (msgpack) of unsigned records, and refuses pickles.
        self._unsigned = Codec()

    def record(self, key: str, data: bytes) -> bytes | None:
        parsed = wire.parse_key(key)
        kind = parsed.kind
        if kind == "header" and self._chained and self._is_loop_header(key, data):
            return self.loop_header(key, data)
        if kind in ("header", "location"):
            return self.header(key, data, location=kind == "location")
        if kind == "delta" and self._chained and parsed.seq:
            # Covered by its loop header's chain, as a signing writer leaves it.
            return None
        if kind == "delta":
            return self.value(data, key)
        if kind == "chunk":
            return self.chunk(key, data)
        if kind in ("item", "memo"):
            return self.outcome(key, data)
        raise _Refused("not a record key this release writes; left unsigned")

    def value(self, blob: bytes, place: str) -> bytes | None:
        """A user-value blob: signed as the bytes it is, never decoded."""
        if not blob:
            raise _Refused("the blob is empty")
        tag = blob[:1]
        if tag == _SIGNED:
            if not _signature_holds(self._codec, blob, self._id, place):
                raise _Refused("it is signed with another key (or was changed); left as it is")
            return None
        if tag not in _VALUE_TAGS:
            raise _Refused(f"unknown format tag {tag!r}; left unsigned")
        return _sign(self._codec, blob, self._id, place)

    def outcome(self, key: str, data: bytes) -> bytes | None:
        """A fan-out item's or memoized step's outcome: a tag, then a blob."""
        tag, blob = data[:1], data[1:]
        if tag not in _OUTCOME_TAGS:
            raise _Refused("not a recorded outcome (no result or exception tag); left unsigned")
        signed = self.value(blob, key)
        return None if signed is None else tag + signed

    def header(self, key: str, data: bytes, *, location: bool) -> bytes | None:
        """A header or a loop's layout record: plain data, holding user-value
        blobs in the fields `_NESTED` names, each signed with the header's key."""
        decoded = self._plain(key, data)
        if not isinstance(decoded, dict):
            raise _Refused("not a checkpoint header (not a map); left unsigned")
        nested = () if location else self._nested_fields(decoded)
        changed = dict(decoded)
        for name in nested:
            blob = decoded.get(name)
            if blob is None or blob == b"":
                continue  # a loop that carries nothing writes b"" (format 2)
            if not isinstance(blob, bytes):
                raise _Refused(f"its field {name!r} should hold a value blob; left unsigned")
            signed = self.value(blob, key)
            if signed is not None:
                changed[name] = signed
        if changed != decoded:
            # A signing writer packs the header with its blobs signed inside.
            return self._codec.dumps_plain(changed, execution_id=self._id, key=key)
        if data[:1] == _SIGNED:
            return None
        return _sign(self._codec, data, self._id, key)

    def _is_loop_header(self, key: str, data: bytes) -> bool:
        if Codec.is_chained(data):
            return True
        decoded = self._plain(key, data)
        return isinstance(decoded, list)  # format 4 writes a loop's header as an array

    def loop_header(self, key: str, data: bytes) -> bytes | None:
        """A format 4 loop header, written chained: its MAC covers the
        values carried inside it (left unsigned) and the raw delta records
        since the last chunk (left as they are), as `loop.py` writes it."""
        decoded = self._plain(key, data)  # a chained one: its msgpack, unchecked yet
        try:
            header = wire.check_header(self._id, key, decoded)
            layout_key = wire.location_key(key)
            layout_data = self._checkpoints.get(layout_key)
            layout = None if layout_data is None else self._plain(layout_key, layout_data)
            merged = wire.with_layout(self._id, key, header, layout)
            described = wire.LoopHeader.parse(merged).described()
            bound = deltas.bound(
                dict(self._checkpoints), execution_id=self._id, key=key, described=described
            )
        except (CorruptCheckpoint, KeyError, TypeError, ValueError) as exc:
            raise _Refused(f"its loop header cannot be read ({exc}); left as it is") from None
        if Codec.is_chained(data):
            try:
                self._codec.open_chained(data, bound, execution_id=self._id, key=key)
            except CorruptCheckpoint:
                raise _Refused(
                    "it is signed with another key (or it or its deltas were changed); "
                    "left as it is"
                ) from None
            return None
        return self._codec.dumps_chained(decoded, bound, execution_id=self._id, key=key)

    def chunk(self, key: str, data: bytes) -> bytes | None:
        """A folded chunk: a blob of zlib-compressed bytes that are a blob
        themselves; a signing writer signs both, with the chunk's key."""
        if data[:1] == _SIGNED:
            self._plain(key, data)  # refuses another key's
            return None
        packed = self._plain(key, data)
        if not isinstance(packed, bytes):
            raise _Refused("not a chunk (it holds no compressed bytes); left unsigned")
        try:
            inner = zlib.decompress(packed)
        except zlib.error as exc:
            raise _Refused(f"its compressed deltas cannot be decompressed ({exc})") from None
        signed = self.value(inner, key)
        if signed is not None:
            packed = zlib.compress(signed, deltas.COMPRESSION)
        return self._codec.dumps_plain(packed, execution_id=self._id, key=key)

    def _plain(self, key: str, data: bytes) -> Any:
        """Decode msgpack only: a pickle is refused, never unpickled."""
        reader = self._codec if data[:1] == _SIGNED else self._unsigned
        try:
            return reader.loads_plain(data, execution_id=self._id, key=key)
        except CorruptCheckpoint as exc:
            raise _Refused(f"{exc.reason}; left as it is") from None

    def _nested_fields(self, header: dict[Any, Any]) -> tuple[str, ...]:
        kind = header.get(wire.KIND)
        if not isinstance(kind, str) or kind not in _NESTED:
            raise _Refused(f"a header of unknown kind {kind!r}; left unsigned")
        return _NESTED[kind]


def _sign(codec: Codec, blob: bytes, execution_id: str, place: str) -> bytes:
    return codec.sign_blob(blob, execution_id=execution_id, key=place)


def _signature_holds(codec: Codec, blob: bytes, execution_id: str, place: str) -> bool:
    return codec.signature_holds(blob, execution_id=execution_id, key=place)
