"""Carried containers written as deltas: only what changed since the last
checkpoint, so a loop that builds a list, dict or set writes O(1) per
iteration instead of the whole value.

Only containers the analysis proved the body changes at the top level alone
(`Change.level == SHALLOW`: it sets, deletes, adds or appends, and never
changes an object inside) and does not rebind or share are written this way;
anything else is written whole. What changed is found by comparing the value
with a shadow of what the records already hold, at C speed (identity of
keys, items and values), never by trusting the bytecode alone: a change the
shadow cannot express (a list edited in place, a dict reordered) writes the
value whole again, as a new base.

Records of carried `name` at loop position `P` (keys from `wire`):

    P+name.0     the base: the whole value
    P+name.<s>   delta s (list, deque: new items; dict: [deleted keys,
                 [key, value, ...]]; set: [added, removed])
    P+name~<s>   a chunk: deltas s-FOLD+1 .. s, folded into one record,
                 compressed (zlib: it rewrites what the deltas held, and
                 compression keeps that rewrite a fraction of the payload;
                 level 6, off the event loop: see `compress_folds`)

Every FOLD deltas are folded into one chunk in the same transaction as the
checkpoint that completes them (and deleted), so a resume reads
O(n / FOLD) records rather than one per iteration.

Authentication (format 4, with a key). Bases and chunks are signed one by
one. Delta records are not: each track keeps `chain`, a running SHA-256
over its delta records since the last chunk (key and bytes), and the
loop's header MAC covers every track's chain (`bound`). A reader derives
the same chains from the raw records and checks the header before it
decodes any delta (`records.read`), so a delta that was changed, moved,
dropped or planted is refused before a byte of it reaches the unpickler.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import operator
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resumable.errors import CorruptCheckpoint
from resumable.runtime import wire

# Deltas per chunk. At 1,000, resuming 100,000 appended iterations reads 100
# chunk records; folding rewrites each delta once more (see README, Benchmarks).
FOLD = 1000

LIST, DEQUE, DICT, SET = "list", "deque", "dict", "set"
KIND_OF: dict[type, str] = {
    list: LIST,
    collections.deque: DEQUE,
    dict: DICT,
    set: SET,
}

# zlib level of chunks. Level 6 writes about 30% less than level 1 on text
# (see benchmarks/bench_bytes.py) and takes about 5x longer: 15 ms for 1,000
# deltas of 200-byte results here, so it runs in a worker thread (zlib lets
# go of the GIL) once a chunk is big enough for that to matter.
COMPRESSION = 6
_IN_THREAD_BYTES = 64 * 1024

Dump = Callable[[Any, str], bytes]  # (value, key) -> record bytes
Load = Callable[[bytes, str], Any]
# Chunks folded by this checkpoint, not yet compressed: key -> (the
# encoded deltas, how to encode the compressed record). See compress_folds.
Folds = dict[str, tuple[bytes, Dump]]


def kind_of(value: object, appends_only: bool) -> str | None:
    """The delta kind of a value, or None (written whole). Lists and deques
    take deltas only when the body just appends (`appends_only`); a deque
    with a maxlen drops items from its other end, which a delta of new items
    would not say."""
    kind = KIND_OF.get(type(value))
    sequence = kind in (LIST, DEQUE)
    if sequence and (not appends_only or getattr(value, "maxlen", None) is not None):
        return None
    return kind


@dataclass(slots=True)
class Track:
    """Where one delta-written value stood at its last checkpoint."""

    kind: str
    value: Any  # the live object: a replaced one is written as a new base
    seq: int = 0  # last delta written (0: the base)
    fold: int = FOLD  # 0: never folded (lists written by format 1)
    length: int = 0  # list, deque: items the records hold
    tail: object = None  # list, deque: the last of them (an edit in place changes it)
    shadow: Any = None  # dict, set: a copy of what the records hold
    # Deltas since the last fold (what the next chunk holds).
    pending: list[Any] = field(default_factory=list)
    # dict, set: the change written last, applied to the shadow by `settle`
    # once the store acknowledged it (a failed write leaves the shadow as
    # the records are).
    unsettled: Any = None
    # Digest of the delta records since the last fold (b"": none), kept
    # when they are authenticated through the loop header (see the module).
    chain: bytes = b""

    @property
    def folded(self) -> int:
        return self.seq - self.seq % self.fold if self.fold else 0

    def wire(self) -> list[Any]:
        return [self.kind, self.seq, self.fold]


def write(
    track: Track | None,
    kind: str,
    value: Any,
    *,
    key: str,
    name: str,
    dump: Dump,
    puts: dict[str, bytes],
    deletes: list[str],
    folds: Folds,
    dump_delta: Dump | None = None,
) -> Track:
    """Put this checkpoint's records of `value` into `puts`/`deletes`, and a
    chunk it folds into `folds` (for `compress_folds`); the track for the
    next checkpoint. `dump_delta`: how delta records are written when the
    loop header authenticates them (unsigned; their chain is kept), else
    they are written with `dump` like the rest."""
    if track is not None and track.value is value and track.kind == kind:
        change = _DIFF[kind](track, value)
        if change is None:
            return track  # nothing changed: nothing written
        if change is not _REBASE:
            return _delta(
                track,
                change,
                key=key,
                name=name,
                dump=dump,
                puts=puts,
                deletes=deletes,
                folds=folds,
                dump_delta=dump_delta,
            )
    if track is not None:
        _drop(track, key, name, deletes)
    base_key = wire.delta_key(key, name, 0)
    puts[base_key] = dump(_whole(kind, value), base_key)
    return _fresh(kind, value)


def rebuild(
    records: dict[str, bytes],
    *,
    execution_id: str,
    key: str,
    name: str,
    described: list[Any],
    load: Load,
    load_delta: Load | None = None,
    keep_chain: bool = False,
) -> tuple[Any, Track]:
    """The value from its base, chunks and deltas, and its track.
    `load_delta`: how delta records are decoded, when the caller has
    checked them through the loop header's chain (else `load`).
    `keep_chain`: the writer goes on chaining (format 4 with a key)."""
    kind, seq, fold = described[0], int(described[1]), int(described[2])
    folded = seq - seq % fold if fold else 0

    def read(record: str, decode: Load = load) -> Any:
        data = records.get(record)
        if data is None:
            raise CorruptCheckpoint(execution_id, record, f"a delta record of {name!r} is missing")
        return decode(data, record)

    value = _from_whole(kind, read(wire.delta_key(key, name, 0)))
    apply = _APPLY[kind]
    if fold:
        for end in range(fold, folded + 1, fold):
            chunk_key = wire.chunk_key(key, name, end)
            try:
                inner = zlib.decompress(read(chunk_key))
            except (zlib.error, TypeError) as exc:  # unsigned and damaged
                raise CorruptCheckpoint(
                    execution_id, chunk_key, f"the chunk cannot be decompressed ({exc})"
                ) from None
            for change in _chunk_changes(kind, load(inner, chunk_key)):
                apply(value, change)
    decode = load_delta or load
    unfolded = [read(wire.delta_key(key, name, s), decode) for s in range(folded + 1, seq + 1)]
    for change in unfolded:
        apply(value, change)
    track = _fresh(kind, value)
    track.seq, track.fold = seq, fold  # format 1 lists (fold 0) go on unfolded
    if keep_chain:
        # Its chain must cover these deltas however they were authenticated
        # (a chained header, or each one signed).
        track.chain = _chain_of(records, key, name, folded, seq) or b""
    # The next chunk folds these too (their records go when it is written).
    track.pending = unfolded if fold else []
    return value, track


def bound(
    records: dict[str, bytes], *, execution_id: str, key: str, described: dict[str, list[Any]]
) -> bytes:
    """What the loop header's MAC covers of its delta records: each
    delta-written value's chain, derived from the raw records (nothing is
    decoded). `described`: the header's {name: [kind, seq, fold]}."""
    chains: dict[str, bytes] = {}
    for name, (_, last, per_chunk) in described.items():
        seq, fold = int(last), int(per_chunk)
        folded = seq - seq % fold if fold else 0
        chain = _chain_of(records, key, name, folded, seq)
        if chain is None:
            raise CorruptCheckpoint(execution_id, key, f"a delta record of {name!r} is missing")
        chains[name] = chain
    return chain_bound(chains)


def chain_bound(chains: dict[str, bytes]) -> bytes:
    """The bytes a loop header's MAC covers for these tracks' chains."""
    return b"".join(
        f"{len(name)}:{name}{len(chain)}:".encode() + chain for name, chain in chains.items()
    )


def _chain_of(
    records: dict[str, bytes], key: str, name: str, folded: int, seq: int
) -> bytes | None:
    chain = b""
    for s in range(folded + 1, seq + 1):
        record = wire.delta_key(key, name, s)
        data = records.get(record)
        if data is None:
            return None
        chain = _chain_step(chain, record, data)
    return chain


def _chain_step(chain: bytes, record: str, data: bytes) -> bytes:
    digest = hashlib.sha256(chain)
    digest.update(f"{len(record)}:{record}".encode())
    digest.update(data)
    return digest.digest()


async def compress_folds(folds: Folds, puts: dict[str, bytes]) -> None:
    """Compress the chunks `write` folded into their records in `puts`."""
    for chunk_key, (inner, dump) in folds.items():
        if len(inner) < _IN_THREAD_BYTES:
            packed = zlib.compress(inner, COMPRESSION)
        else:
            packed = await asyncio.to_thread(zlib.compress, inner, COMPRESSION)
        puts[chunk_key] = dump(packed, chunk_key)


def settle(track: Track) -> None:
    """The records now hold the last change: so does the shadow."""
    if track.unsettled is not None:
        (_apply_dict if track.kind == DICT else _apply_set)(track.shadow, track.unsettled)
        track.unsettled = None


def record_names(key: str, name: str, track: Track) -> list[str]:
    """Every record a track's value is rebuilt from."""
    found = [wire.delta_key(key, name, 0)]
    if track.fold:
        ends = range(track.fold, track.folded + 1, track.fold)
        found += [wire.chunk_key(key, name, end) for end in ends]
    found += [wire.delta_key(key, name, s) for s in range(track.folded + 1, track.seq + 1)]
    return found


# -- internals -------------------------------------------------------------------

_REBASE = object()


def _fresh(kind: str, value: Any) -> Track:
    track = Track(kind, value, fold=FOLD)
    if kind in (LIST, DEQUE):
        track.length = len(value)
        track.tail = value[-1] if value else None
    elif kind == DICT:
        track.shadow = dict(value)
    else:
        track.shadow = set(value)
    return track


def _delta(
    track: Track,
    change: Any,
    *,
    key: str,
    name: str,
    dump: Dump,
    puts: dict[str, bytes],
    deletes: list[str],
    folds: Folds,
    dump_delta: Dump | None,
) -> Track:
    seq = track.seq + 1
    pending = [*track.pending, change]
    chain = b""
    if track.fold and seq % track.fold == 0:
        # Fold: one chunk replaces the deltas since the last fold.
        chunk_key = wire.chunk_key(key, name, seq)
        folds[chunk_key] = (dump(_chunk(track.kind, pending), chunk_key), dump)
        deletes.extend(wire.delta_key(key, name, s) for s in range(seq - track.fold + 1, seq))
        pending = []
    else:
        delta_key = wire.delta_key(key, name, seq)
        if dump_delta is None:
            puts[delta_key] = dump(change, delta_key)
        else:
            puts[delta_key] = blob = dump_delta(change, delta_key)
            chain = _chain_step(track.chain, delta_key, blob)
    following = Track(track.kind, track.value, seq, track.fold, shadow=track.shadow, chain=chain)
    following.pending = pending
    if track.kind in (LIST, DEQUE):
        following.length = track.length + len(change)
        following.tail = change[-1] if change else track.tail
    else:
        following.unsettled = change
    return following


def _drop(track: Track, key: str, name: str, deletes: list[str]) -> None:
    """The records of a value that is written whole again."""
    deletes.extend(record_names(key, name, track)[1:])


def _whole(kind: str, value: Any) -> Any:
    if kind == DEQUE:
        return list(value)
    return value


def _from_whole(kind: str, value: Any) -> Any:
    if kind == DEQUE:
        return collections.deque(value)
    return value


# Diffs: None (unchanged), _REBASE (write it whole), or the change.


def _diff_sequence(track: Track, value: Any) -> Any:
    length = len(value)
    if length < track.length or (track.length and value[track.length - 1] is not track.tail):
        return _REBASE  # shrunk, or edited where the records already hold it
    if length == track.length:
        return None
    if type(value) is list:
        return value[track.length :]
    return list(itertools.islice(reversed(value), length - track.length))[::-1]


def _diff_dict(track: Track, value: dict[Any, Any]) -> Any:
    shadow: dict[Any, Any] = track.shadow
    deleted: list[Any] = []
    if len(value) < len(shadow) or any(map(operator.is_not, shadow, value)):
        # Keys went (or moved): those left must keep their order.
        deleted = [k for k in shadow if k not in value]
        if not deleted:
            return _REBASE
        gone = set(deleted)
        kept = [k for k in shadow if k not in gone]
        if any(map(operator.is_not, kept, value)):
            return _REBASE
        old_values = [shadow[k] for k in kept]
        old = len(kept)
    else:
        old_values = shadow.values()  # type: ignore[assignment]
        old = len(shadow)
    flags = list(map(operator.is_not, old_values, value.values()))
    changed = list(itertools.compress(itertools.islice(value, old), flags)) if any(flags) else []
    added = list(itertools.islice(reversed(value), len(value) - old))[::-1]
    if not deleted and not changed and not added:
        return None
    flat: list[Any] = []
    for k in (*changed, *added):
        flat += (k, value[k])
    return [deleted, flat]


def _diff_set(track: Track, value: set[Any]) -> Any:
    shadow: set[Any] = track.shadow
    added = value - shadow
    removed = shadow - value if len(shadow) + len(added) != len(value) else set()
    if not added and not removed:
        return None
    return [list(added), list(removed)]


def _apply_sequence(value: Any, change: list[Any]) -> None:
    value.extend(change)


def _apply_dict(value: dict[Any, Any], change: list[Any]) -> None:
    deleted, flat = change
    for k in deleted:
        del value[k]
    it = iter(flat)
    value.update(zip(it, it, strict=True))


def _apply_set(value: set[Any], change: list[Any]) -> None:
    added, removed = change
    value.difference_update(removed)
    value.update(added)


_DIFF: dict[str, Callable[[Track, Any], Any]] = {
    LIST: _diff_sequence,
    DEQUE: _diff_sequence,
    DICT: _diff_dict,
    SET: _diff_set,
}
_APPLY: dict[str, Callable[[Any, Any], None]] = {
    LIST: _apply_sequence,
    DEQUE: _apply_sequence,
    DICT: _apply_dict,
    SET: _apply_set,
}


def _chunk(kind: str, changes: list[Any]) -> Any:
    if kind in (LIST, DEQUE):
        return [item for change in changes for item in change]
    return changes


def _chunk_changes(kind: str, chunk: Any) -> list[Any]:
    if kind in (LIST, DEQUE):
        return [chunk]
    return list(chunk)
