"""The checkpoint record format: what every process that touches a store
agrees on. Nothing else builds or parses a record key or a header field.

Keys. Each helper call of an execution has a *position*: "#<n>" is the n-th
helper call of its scope, and a loop iteration or fan-out item opens a
scope "<position>[<index>]/" (so "#0[5]/#1" is the 2nd call in iteration 5
of the loop at #0). Records live at:

    <position>              the header of a loop, fan-out, step, value, sleep or child
    <position>@             a loop's layout: its site, file:line, total, how
                            each carried value is written; rewritten only
                            when it changes (format 2: the location alone)
    <position>+<name>.<seq> delta <seq> of carried <name> (0: the base); see deltas.py
    <position>+<name>~<seq> a chunk: the deltas up to <seq> since the previous chunk
    <position>=<index>      the outcome of fan-out item <index>
    memo:<step>:<digest>    a memoized step outcome

Headers are plain dicts with one-letter wire names (the constants below;
a format 4 loop header is an array, see `LoopHeader.wire`),
encoded by the codec; user values inside them are nested codec blobs, so a
header is readable (progress, `show`) without unpickling anything of the
user's. Item and memo records start with a one-byte outcome tag instead
(b"r" result, b"e" exception).

Version. `FORMAT_VERSION` is stored with every execution (the store's
`format` field). A process refuses an execution written in a newer format,
naming both; format 1 (releases before the field existed) has the same keys
and headers and is read as it is. Fan-out headers carry exact item counts
(ITEMS_DONE, ITEMS_FAILED) within format 2: a reader ignores header fields
it does not know, so older releases still read them. Format 1 wrote the
same two fields inexactly (an earlier attempt's failures counted as done),
and format 2 before them did not write them: progress counts the item
records of such executions instead (see COUNTED_FORMAT). Format 3 moved a
loop's unchanging fields out of its per-iteration header into its layout
record (see LAYOUT_FORMAT); readers merge the two, so they read formats 1
to 3 alike. An execution keeps the format it was created with: a process
that resumes an older one goes on writing that format (`LoopHeader.wire`),
so a store never mixes formats within an execution. Format 4 writes a
loop's per-iteration header as an array without KIND, and, with a key,
authenticates each iteration with one MAC on that header that covers its
delta records too (see CHAINED_FORMAT); readers of format 4 read 1 to 3.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from resumable.errors import CorruptCheckpoint, FormatVersionError
from resumable.stores.checks import DELTA_MARK, ITEM_MARK, MEMO_PREFIX
from resumable.stores.codec import Codec

FORMAT_VERSION: Final = 4
# What a record without a format field was written in.
FIRST_FORMAT: Final = 1
# From this format on, a fan-out header's ITEMS_DONE/ITEMS_FAILED, when
# present, equal its item records. Format 1 wrote them too, but counted the
# failures recorded by an earlier attempt as done (and not as failed).
COUNTED_FORMAT: Final = 2
# From this format on, a loop's header holds only what changes with every
# iteration (the index, the carried blob, delta sequence numbers, the last
# item's digest), and its layout record ("<position>@") the rest, rewritten
# only when it changes. Before it, the header held every field and the "@"
# record only the location: about 60 bytes more per iteration.
LAYOUT_FORMAT: Final = 3
# From this format on, with a secret key, a loop's per-iteration header is a
# chained record (`Codec.dumps_chained`): one 16-byte MAC over the header,
# the values carried whole inside it and the digests of the loop's delta
# records since their last chunk (`deltas.bound`), which are then written
# without a signature of their own; bases, chunks and every other record
# are signed one by one as before. Its header also leaves out KIND (a
# header without one is a loop's: `_normal`). About 60 bytes less per
# iteration than signing each record, which keeps a signed store within
# 1.5x of the payload.
CHAINED_FORMAT: Final = 4

# -- header wire names ---------------------------------------------------------

KIND: Final = "k"  # every header: loop, map, gather, step, value, sleep, child
SITE: Final = "s"  # which helper (stable across edits elsewhere)
WHERE: Final = "w"  # file:line, for messages
# loop
INDEX: Final = "i"  # iterations finished
TOTAL: Final = "n"  # len(iterable), or None (also fan-outs)
DONE: Final = "d"  # the iterable is exhausted
APPENDS: Final = "a"  # format 1: {name: last delta seq} of lists written as deltas
DELTAS: Final = "t"  # format 2: {name: [kind, last delta seq, deltas per chunk]}
DELTA_KINDS: Final = "y"  # format 3, layout: {name: [kind, deltas per chunk]}
SEQS: Final = "q"  # format 3, header: [last delta seq], in DELTA_KINDS order
CARRIED: Final = "c"  # the carried values (a codec blob)
SAME: Final = "e"  # names still bound to the object the loop began with
LINKED: Final = "l"  # CARRIED is a linked pickle of values sharing objects
DIGEST: Final = "h"  # digest of the last finished item
# inside a linked CARRIED blob: values rebound, and contents of SAME objects
LINKED_VALUES: Final = "v"
LINKED_STATES: Final = "s"
# fan-out
IN_FLIGHT: Final = "f"
CONCURRENCY: Final = "c"
# fan-out: items recorded so far (succeeded, failed), equal to its item
# records (written with each of them); also in a compacted summary
ITEMS_DONE: Final = "i"
ITEMS_FAILED: Final = "x"
# step
RESULT: Final = "r"
ERROR: Final = "e"
FAILED: Final = "x"  # compacted: the step raised
# a summary left by compaction at completion (values and items dropped)
COMPACTED: Final = "z"
# value, sleep
VALUE: Final = "v"
# child
CHILD: Final = "c"

LOOP: Final = "loop"
MAP: Final = "map"
GATHER: Final = "gather"
STEP: Final = "step"
JOURNALED: Final = "value"
SLEEP: Final = "sleep"
CHILD_KIND: Final = "child"
FANOUT_KINDS: Final = (MAP, GATHER)

# Outcome tags of item and memo records.
OUTCOME_RESULT: Final = b"r"
OUTCOME_ERROR: Final = b"e"

# -- keys ----------------------------------------------------------------------


def position(scope: str, seq: int) -> str:
    return f"{scope}#{seq}"


SCOPE_END: Final = "/"  # ends every iteration or item scope, and nothing else in a key


def item_scope(scope: str, key: str, index: int) -> str:
    """The scope of item `index` of the fan-out (or iteration of the loop) at `key`."""
    return f"{scope}{key}[{index}]{SCOPE_END}"


def scope_prefixes(key: str) -> Iterator[str]:
    """The scopes `key` lies in, outermost first ("#0[3]/#1[2]/#0" gives
    "#0[3]/" and "#0[3]/#1[2]/"); none for a memoized outcome, which is
    shared by every scope."""
    if key.startswith(MEMO_PREFIX):
        return
    end = key.find(SCOPE_END)
    while end >= 0:
        yield key[: end + 1]
        end = key.find(SCOPE_END, end + 1)


def item_position(key: str, index: int) -> str:
    """What `current().idempotency_key()` names for an item."""
    return f"{key}[{index}]"


def location_key(key: str) -> str:
    return f"{key}@"


# The marks that make a key not a header's are the stores' rule for
# `load_headers` (stores/checks.py), so they are defined there, once.


def delta_key(key: str, name: str, seq: int) -> str:
    return f"{key}{DELTA_MARK}{name}.{seq}"


def delta_prefix(key: str, name: str) -> str:
    return f"{key}{DELTA_MARK}{name}."


def chunk_key(key: str, name: str, seq: int) -> str:
    return f"{key}{DELTA_MARK}{name}~{seq}"


def item_key(key: str, index: int) -> str:
    return f"{key}{ITEM_MARK}{index}"


def memo_key(step: str, digest: str) -> str:
    return f"{MEMO_PREFIX}{step}:{digest}"


KeyKind = Literal["header", "location", "delta", "chunk", "item", "memo", "unknown"]


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """What a record key says: its kind, the position of the helper it
    belongs to, and the carried name and sequence number (deltas) or item
    index (fan-out items)."""

    kind: KeyKind
    position: str
    name: str | None = None
    seq: int | None = None
    index: int | None = None


_POSITION = r"(?:#\d+\[\d+\]/)*#\d+"
_KEY = re.compile(
    rf"(?P<position>{_POSITION})"
    rf"(?:(?P<location>@)|{re.escape(DELTA_MARK)}(?P<name>[^.~]+)(?P<sep>[.~])(?P<seq>\d+)"
    rf"|{re.escape(ITEM_MARK)}(?P<index>\d+))?"
)
_POSITION_ONLY = re.compile(_POSITION)
_NUMBERS = re.compile(r"(\d+)")


def parse_key(key: str) -> ParsedKey:
    """The typed meaning of a record key (kind "unknown" for anything else)."""
    if key.startswith(MEMO_PREFIX):
        return ParsedKey("memo", key)
    found = _KEY.fullmatch(key)
    if found is None:
        return ParsedKey("unknown", key)
    where = found["position"]
    if found["location"]:
        return ParsedKey("location", where)
    if found["name"] is not None:
        kind: KeyKind = "delta" if found["sep"] == "." else "chunk"
        return ParsedKey(kind, where, name=found["name"], seq=int(found["seq"]))
    if found["index"] is not None:
        return ParsedKey("item", where, index=int(found["index"]))
    return ParsedKey("header", where)


def is_position(text: str) -> bool:
    return _POSITION_ONLY.fullmatch(text) is not None


def position_order(where: str) -> tuple[int | str, ...]:
    """Sort key for positions in program order: "#2" before "#10", and a
    scope ("#1[3]/#0") right after the helper that opened it."""
    return tuple(int(part) if part.isdigit() else part for part in _NUMBERS.split(where))


# -- headers -------------------------------------------------------------------


# Not frozen: one is built at every checkpoint, and a frozen dataclass's
# __init__ (object.__setattr__ per field) cost ~3 us more per iteration here.
@dataclass(slots=True)
class LoopHeader:
    site: str
    index: int
    total: int | None
    done: bool
    appends: dict[str, int]  # format 1 (lists only); read, no longer written
    carried: bytes
    same: tuple[str, ...] = ()
    linked: bool = False
    digest: Any = None
    location: str | None = None  # format 1 wrote it here; format 2 in "<key>@"
    deltas: dict[str, list[Any]] = field(default_factory=dict)

    def described(self) -> dict[str, list[Any]]:
        """Every delta-written value: [kind, last seq, deltas per chunk]."""
        found = {name: ["list", seq, 0] for name, seq in self.appends.items()}
        found.update(self.deltas)
        return found

    def wire(self, format: int = FORMAT_VERSION) -> dict[str, Any] | list[Any]:
        """The per-iteration header (see `layout` for the rest). Format 2
        and older: every field, in the header. Format 4: an array,
        [INDEX, SEQS, DIGEST, {the other fields}], trailing empties left
        out (`_normal` reads it back as the map)."""
        if format < LAYOUT_FORMAT:
            return self._inline()
        if format >= CHAINED_FORMAT:
            return self._positional()
        out: dict[str, Any] = {KIND: LOOP, INDEX: self.index}
        if self.done:
            out[DONE] = True
        if self.carried:
            out[CARRIED] = self.carried
        if self.deltas:
            out[SEQS] = [described[1] for described in self.deltas.values()]
        if self.digest is not None:
            out[DIGEST] = self.digest
        return out

    def _positional(self) -> list[Any]:
        rest: dict[str, Any] = {}
        if self.done:
            rest[DONE] = True
        if self.carried:
            rest[CARRIED] = self.carried
        seqs = [described[1] for described in self.deltas.values()] if self.deltas else None
        out: list[Any] = [self.index, seqs, self.digest, rest or None]
        while out[-1] is None:
            out.pop()
        return out

    def layout(self, location: str, format: int = FORMAT_VERSION) -> dict[str, Any]:
        """The loop's layout record: what rarely changes between iterations
        (format 2 and older: the location alone)."""
        if format < LAYOUT_FORMAT:
            return location_header(location)
        out: dict[str, Any] = {SITE: self.site, WHERE: location, TOTAL: self.total}
        if self.deltas:
            out[DELTA_KINDS] = {
                name: [described[0], described[2]] for name, described in self.deltas.items()
            }
        if self.linked:
            out[LINKED] = 1
        elif self.same:
            out[SAME] = list(self.same)
        return out

    def _inline(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            KIND: LOOP,
            SITE: self.site,
            INDEX: self.index,
            TOTAL: self.total,
            DONE: self.done,
            CARRIED: self.carried,
        }
        if self.appends:
            out[APPENDS] = self.appends
        if self.deltas:
            out[DELTAS] = self.deltas
        if self.linked:
            out[LINKED] = 1
        elif self.same:
            out[SAME] = list(self.same)
        if self.digest is not None:
            out[DIGEST] = self.digest
        return out

    def summary(self, location: str) -> dict[str, Any]:
        """What compaction keeps: progress, without the carried values."""
        return {
            KIND: LOOP,
            SITE: self.site,
            WHERE: location,
            INDEX: self.index,
            TOTAL: self.total,
            DONE: self.done,
            COMPACTED: 1,
        }

    @classmethod
    def parse(cls, header: dict[str, Any]) -> LoopHeader:
        """A header as `with_layout` returns it (or a format-2 one)."""
        return cls(
            site=str(header[SITE]),
            index=int(header[INDEX]),
            total=header.get(TOTAL),
            done=bool(header.get(DONE)),
            appends=dict(header.get(APPENDS) or {}),
            carried=header.get(CARRIED, b""),
            same=tuple(header.get(SAME) or ()),
            linked=bool(header.get(LINKED)),
            digest=header.get(DIGEST),
            location=header.get(WHERE),
            deltas=dict(header.get(DELTAS) or {}),
        )


@dataclass(slots=True)  # built with every finished item: see LoopHeader
class FanoutHeader:
    """Written with every finished item, in the same transaction: progress
    costs no extra write. `items_done`/`items_failed` count the item records
    (exactly: the header and the item that changed them are one write), so a
    viewer reads progress from the header alone; `concurrency` lets it
    estimate what runs between two writes.

    The counts were added without a new FORMAT_VERSION: readers ignore
    header fields they do not know. A header without them (format 2 before
    they were written), or of a format-1 execution (whose counts were
    inexact across resumes), is read by counting the item records."""

    kind: str  # MAP or GATHER
    site: str
    location: str
    total: int | None
    in_flight: int
    concurrency: int | None
    # None in a header written without the counts (count the item records).
    items_done: int | None = None
    items_failed: int | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            KIND: self.kind,
            SITE: self.site,
            WHERE: self.location,
            TOTAL: self.total,
            IN_FLIGHT: self.in_flight,
            CONCURRENCY: self.concurrency,
        }
        if self.items_done is not None:
            out[ITEMS_DONE] = self.items_done
            out[ITEMS_FAILED] = self.items_failed or 0
        return out

    @classmethod
    def parse(cls, header: dict[str, Any]) -> FanoutHeader:
        done = header.get(ITEMS_DONE)
        return cls(
            kind=str(header[KIND]),
            site=str(header[SITE]),
            location=str(header.get(WHERE, "?")),
            total=header.get(TOTAL),
            in_flight=int(header.get(IN_FLIGHT) or 0),
            concurrency=header.get(CONCURRENCY),
            items_done=None if done is None else int(done),
            items_failed=None if done is None else int(header.get(ITEMS_FAILED) or 0),
        )

    def summary(self, done: int, failed: int) -> dict[str, Any]:
        out = self.wire()
        out.update({IN_FLIGHT: 0, ITEMS_DONE: done, ITEMS_FAILED: failed, COMPACTED: 1})
        return out


def step_header(name: str, location: str, outcome: bytes) -> dict[str, Any]:
    """A step's record; `outcome` is a tagged outcome (see OUTCOME_*)."""
    field = ERROR if outcome[:1] == OUTCOME_ERROR else RESULT
    return {KIND: STEP, SITE: name, WHERE: location, field: outcome[1:]}


def value_header(kind: str, name: str, location: str, value: Any) -> dict[str, Any]:
    """A journaled value (now(), uuid4(), random()) or a sleep's wake time."""
    return {KIND: kind, SITE: name, WHERE: location, VALUE: value}


def child_header(site: str, location: str, child: str) -> dict[str, Any]:
    return {KIND: CHILD_KIND, SITE: site, WHERE: location, CHILD: child}


def location_header(location: str) -> dict[str, Any]:
    return {WHERE: location}


def with_layout(
    execution_id: str, key: str, header: dict[str, Any], layout: object
) -> dict[str, Any]:
    """A loop's header with the fields of its layout record (`layout`, the
    decoded "<key>@" record, or None): what `LoopHeader.parse` reads. A
    format-2 header holds every field itself and wins over its layout (the
    location alone)."""
    if not isinstance(layout, dict):
        layout = {}
    merged = {**layout, **header}
    kinds = merged.pop(DELTA_KINDS, None)
    seqs = merged.pop(SEQS, None)
    if SITE not in merged:
        raise CorruptCheckpoint(
            execution_id, key, f"its layout record ({location_key(key)}) is missing or unreadable"
        )
    if kinds is not None or seqs is not None:
        if not isinstance(kinds, dict) or not isinstance(seqs, list) or len(kinds) != len(seqs):
            raise CorruptCheckpoint(
                execution_id, key, "its delta sequence numbers do not match its layout record"
            )
        merged[DELTAS] = {
            name: [how[0], seq, how[1]]
            for (name, how), seq in zip(kinds.items(), seqs, strict=True)
        }
    return merged


@dataclass(slots=True)
class _Sorted:
    """An execution's records by what progress and compaction need."""

    items: dict[str, list[int]] = field(default_factory=dict)  # position -> [done, failed]
    locations: dict[str, bytes] = field(default_factory=dict)  # loop position -> layout record
    headers: dict[str, bytes] = field(default_factory=dict)


def _sort(records: dict[str, bytes]) -> _Sorted:
    found = _Sorted()
    for key, data in records.items():
        parsed = parse_key(key)
        if parsed.kind == "item":
            found.items.setdefault(parsed.position, [0, 0])[data[:1] == OUTCOME_ERROR] += 1
        elif parsed.kind == "location":
            found.locations[parsed.position] = data
        elif parsed.kind == "header":
            found.headers[key] = data
    return found


def _counts(
    header: dict[str, Any], fanout: FanoutHeader, items: dict[str, list[int]], key: str, format: int
) -> tuple[int, int, bool]:
    """A fan-out's done and failed items: from its header when the header's
    counts are exact (format 2 on, or a summary), else from the item records
    (the last: True when those were needed)."""
    exact = format >= COUNTED_FORMAT or header.get(COMPACTED)
    if fanout.items_done is not None and exact:
        return fanout.items_done, fanout.items_failed or 0, False
    done, failed = items.get(key, (0, 0))
    return done, failed, True


def compact(
    execution_id: str, records: dict[str, bytes], codec: Codec, *, format: int = FORMAT_VERSION
) -> dict[str, bytes]:
    """The records a completed execution keeps: a summary per loop and
    fan-out (progress totals), which steps ran and whether they raised, and
    its child executions. Carried values, deltas, item outcomes, memoized
    outcomes and journaled values go: the stored result replaces them.
    Headers that cannot be decoded here are kept as they are. From format
    2 on, `records` may be the headers alone (`Store.load_headers`)."""
    found = _sort(records)
    kept: dict[str, bytes] = {}
    for key, data in found.headers.items():
        try:
            header = check_header(execution_id, key, _decode_header(execution_id, key, data, codec))
        except Exception:
            kept[key] = data
            continue
        kind = header[KIND]
        if header.get(COMPACTED) or kind == CHILD_KIND:
            summary = header
        elif kind == LOOP:
            layout = found.locations.get(key)
            try:
                loop = _loop(execution_id, key, header, layout, codec)
            except CorruptCheckpoint:
                kept[key] = data  # kept as it is, with what it needs to be read
                if layout is not None:
                    kept[location_key(key)] = layout
                continue
            summary = loop.summary(loop.location or "?")
        elif kind in FANOUT_KINDS:
            fanout = FanoutHeader.parse(header)
            done, failed, _ = _counts(header, fanout, found.items, key, format)
            summary = fanout.summary(done, failed)
        elif kind == STEP:
            summary = {KIND: STEP, SITE: header[SITE], WHERE: header.get(WHERE), COMPACTED: 1}
            if ERROR in header:
                summary[FAILED] = 1
        else:
            continue  # journaled values and sleeps: nothing replays them now
        kept[key] = codec.dumps_plain(summary, execution_id=execution_id, key=key)
    return kept


def finished_scope_keys(execution_id: str, records: dict[str, bytes], codec: Codec) -> list[str]:
    """The records under the scope of a loop iteration or fan-out item that
    finished: no resume reads them, since it skips a finished iteration or
    item without running its body. Format 3 runs delete them as each scope
    finishes; older releases left them (one step record per iteration,
    say). Only headers are decoded; a scope whose owner's header cannot be
    read is kept."""
    found = _sort(records)
    loops: dict[str, int] = {}  # loop position -> iterations finished
    for key, data in found.headers.items():
        try:
            header = _decode_header(execution_id, key, data, codec)
        except Exception:  # noqa: S112 (unreadable: what it owns is kept)
            continue
        if isinstance(header, dict) and header.get(KIND) == LOOP and INDEX in header:
            loops[key] = int(header[INDEX])
    items: set[tuple[str, int]] = set()  # (owner of the item scopes, index)
    for key in records:
        parsed = parse_key(key)
        if parsed.kind == "item" and parsed.index is not None:
            where = parsed.position
            items.add((where[: where.rfind(SCOPE_END) + 1] + where, parsed.index))
    dead: list[str] = []
    for key in records:
        for scope in scope_prefixes(key):
            owner, _, index_text = scope[:-2].rpartition("[")  # "<owner>[<index>]/"
            if index_text.isdigit():
                index = int(index_text)
                if loops.get(owner, -1) > index or (owner, index) in items:
                    dead.append(key)
                    break
    return dead


def check_version(execution_id: str, found: int) -> None:
    """Refuse an execution written by a newer release."""
    if found > FORMAT_VERSION:
        raise FormatVersionError(execution_id, found, FORMAT_VERSION)


def check_header(execution_id: str, key: str, header: object) -> dict[str, Any]:
    header = _normal(header)
    if not isinstance(header, dict) or KIND not in header:
        raise CorruptCheckpoint(execution_id, key, "not a checkpoint record")
    return header


def _normal(header: object) -> object:
    """A decoded header as a map with its KIND: format 4 writes a loop's
    (the one header written every iteration) as an array without one
    (`LoopHeader._positional`)."""
    if not isinstance(header, list) or not header or type(header[0]) is not int:
        return header
    found: dict[str, Any] = {KIND: LOOP, INDEX: header[0]}
    found.update(
        (name, value)
        for name, value in zip((SEQS, DIGEST), header[1:3], strict=False)
        if value is not None
    )
    if len(header) > 3:
        rest = header[3]
        if len(header) > 4 or not isinstance(rest, dict) or KIND in rest or INDEX in rest:
            return header  # not a loop header: check_header says so
        found.update(rest)
    return found


def _decode_header(execution_id: str, key: str, data: bytes, codec: Codec) -> object:
    """A header as plain data, never unpickled (see `Codec.loads_plain`)."""
    return _normal(codec.loads_plain(data, execution_id=execution_id, key=key))


# -- progress ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoopProgress:
    """How far one checkpointed loop got: `done` of `total` (None if unknown)."""

    position: str
    site: str
    location: str
    done: int
    total: int | None
    finished: bool


@dataclass(frozen=True, slots=True)
class FanoutProgress:
    """How far one `amap` or `agather` got, in items.

    `done` items succeeded and `failed` ones were recorded as failures
    (`return_exceptions=True`); both counts are written in the fan-out's
    header with every item, in the same transaction, so they are exact
    across resumes. `in_flight` is an estimate (nothing is
    written when an item starts): min(concurrency, unfinished items) while
    the execution runs with a live owner, else 0. `total` is None for an
    input without a length (an async generator).
    """

    position: str
    kind: Literal["amap", "agather"]
    site: str
    location: str
    total: int | None
    done: int
    failed: int
    in_flight: int

    @property
    def pending(self) -> int | None:
        """Items neither finished nor running (None when the total is unknown)."""
        if self.total is None:
            return None
        return max(0, self.total - self.done - self.failed - self.in_flight)

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done + self.failed >= self.total


@dataclass(frozen=True, slots=True)
class Progress:
    """Everything the checkpoint records say about progress; `unreadable`
    counts headers that could not be decoded (signed with a key this process
    does not have, say), so a viewer can say why progress is missing.
    `needs_items`: a fan-out header has no exact item counts (format 1, or
    format 2 before headers carried them), so its counts are those of the
    item records passed in: read from headers only, they are too low; read
    again from every record (`Store.load`)."""

    loops: tuple[LoopProgress, ...] = ()
    fanouts: tuple[FanoutProgress, ...] = ()
    unreadable: int = 0
    first_error: str | None = None
    needs_items: bool = False


_SHOWN_KINDS: dict[str, Literal["amap", "agather"]] = {MAP: "amap", GATHER: "agather"}


def read_progress(
    execution_id: str,
    checkpoints: dict[str, bytes],
    codec: Codec,
    *,
    live: bool,
    format: int = FORMAT_VERSION,
) -> Progress:
    """Progress from the records alone, so any process sharing the store can
    show it and nothing extra is written. Headers (and loop layouts) are
    all it needs: `checkpoints` is what `Store.load_headers` returns, or every
    record. Only headers are decoded (plain data); nothing of the user's is
    ever unpickled. Item records, when passed, are counted by their outcome
    tag, for fan-out headers without exact counts (see `Progress.needs_items`;
    `format` is the execution's, which says whether counts are exact).
    `live=False` (the run is not running, or its owner is gone) reports
    nothing in flight."""
    loops: list[LoopProgress] = []
    fanouts: list[FanoutProgress] = []
    found = _sort(checkpoints)
    headers: dict[str, dict[str, Any]] = {}
    unreadable = 0
    first_error: str | None = None
    needs_items = False
    for key, data in found.headers.items():
        try:
            header = _decode_header(execution_id, key, data, codec)
        except Exception as exc:  # a key we lack, a tampered record: say so, go on
            unreadable += 1
            first_error = first_error or str(exc)
            continue
        if isinstance(header, dict) and header.get(KIND) in (LOOP, MAP, GATHER):
            headers[key] = header
    for key, header in headers.items():
        if header[KIND] == LOOP:
            try:
                loop = _loop(execution_id, key, header, found.locations.get(key), codec)
            except CorruptCheckpoint as exc:
                unreadable += 1
                first_error = first_error or str(exc)
                continue
            location = loop.location or "?"
            loops.append(LoopProgress(key, loop.site, location, loop.index, loop.total, loop.done))
            continue
        fanout = FanoutHeader.parse(header)
        done, failed, counted = _counts(header, fanout, found.items, key, format)
        needs_items = needs_items or counted
        fanouts.append(
            FanoutProgress(
                position=key,
                kind=_SHOWN_KINDS[fanout.kind],
                site=fanout.site,
                location=fanout.location,
                total=fanout.total,
                done=done,
                failed=failed,
                in_flight=_in_flight(fanout, done + failed) if live else 0,
            )
        )
    return Progress(
        loops=tuple(sorted(loops, key=lambda p: position_order(p.position))),
        fanouts=tuple(sorted(fanouts, key=lambda p: position_order(p.position))),
        unreadable=unreadable,
        first_error=first_error,
        needs_items=needs_items,
    )


def loop_location(execution_id: str, key: str, data: bytes | None, codec: Codec) -> str:
    """file:line of the loop at `key`, from its layout record `data`
    ("?" when there is none, or it cannot be read)."""
    return str(_layout(execution_id, key, data, codec).get(WHERE, "?"))


def _layout(execution_id: str, key: str, data: bytes | None, codec: Codec) -> dict[str, Any]:
    """The decoded layout record of the loop at `key` ({} when there is
    none, or it cannot be read: progress shows what it can)."""
    if data is None:
        return {}
    try:
        found = codec.loads_plain(data, execution_id=execution_id, key=location_key(key))
    except Exception:
        return {}
    return found if isinstance(found, dict) else {}


def _loop(
    execution_id: str, key: str, header: dict[str, Any], layout: bytes | None, codec: Codec
) -> LoopHeader:
    merged = with_layout(execution_id, key, header, _layout(execution_id, key, layout, codec))
    return LoopHeader.parse(merged)


def _in_flight(header: FanoutHeader, finished: int) -> int:
    """Items running now, estimated. The header is written as items finish,
    when the finishing ones no longer count and their replacements have not
    started yet (IN_FLIGHT is often 0 while `concurrency` items run); between
    two writes a live fan-out keeps min(concurrency, unfinished items)
    running."""
    if header.concurrency is None:  # written before CONCURRENCY was recorded
        return header.in_flight
    if header.total is None:
        return int(header.concurrency)
    return max(0, min(int(header.concurrency), int(header.total) - finished))
