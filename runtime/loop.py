"""The iterator behind `aiter_checkpointed`.

Built in the user's frame while it executes the call that feeds an
`async for`, it (1) finds the loop and what its body does from the bytecode
(cached per code object and call site), (2) on replay writes the carried
values of the last checkpoint back into the frame and positions the source
at the first unfinished index, checking that the item there is the one the
checkpoint saw, (3) decides which locals to carry, with the values at hand
(`carry`), refusing before the first iteration what it can neither carry nor
leave out, and (4) after each finished iteration (or every `every`) writes
one atomic checkpoint: the next index, the carried values, and for
containers the body changes only at the top level, just what changed
(`deltas`).
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from types import FrameType
from typing import Any, Final, Generic, TypeVar

from resumable.errors import (
    CarryAuditError,
    CorruptCheckpoint,
    NonDeterminismError,
    UnsupportedBytecode,
)
from resumable.runtime import (
    audit,
    bytecode,
    carry,
    deltas,
    events,
    frames,
    kinds,
    ordering,
    records,
    wire,
)
from resumable.runtime.context import (
    ExecutionContext,
    OpenLoop,
    current_execution,
    pop_loop,
    push_loop,
)
from resumable.runtime.loopsite import LoopSite, loop_site
from resumable.stores.codec import UnserializableValue

T = TypeVar("T")


class _Auto:
    """Sentinel: work out the carried locals from the bytecode."""

    _instance: _Auto | None = None

    def __new__(cls) -> _Auto:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "AUTO"

    def __reduce__(self) -> str:
        return "AUTO"


AUTO: Final = _Auto()
_MISSING = object()
_NO_TRACKS: dict[str, list[Any]] = {}
_MSGPACK_TAG = ord("m")  # an unsigned msgpack blob: the common case, no check needed


def find_site(frame: FrameType) -> LoopSite:
    """The loop the call running in `frame` feeds; bytecode the analysis does
    not model is refused as UnsupportedBytecode, naming what it met."""
    try:
        return loop_site(frame.f_code, frame.f_lasti)
    except bytecode.Unmodelled as exc:
        where = f"{frame.f_code.co_filename}:{frame.f_lineno} (in {frame.f_code.co_qualname})"
        raise UnsupportedBytecode(where, exc.opname, exc.detail) from None


class CheckpointedLoop(AsyncIterator[T], Generic[T]):
    """Async iterator that checkpoints the calling frame's loop state."""

    def __init__(
        self,
        iterable: Iterable[T] | AsyncIterable[T],
        *,
        carry: _Auto | tuple[str, ...],
        ignore: tuple[str, ...],
        every: int,
        name: str | None,
        frame: FrameType,
    ) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"aiter_checkpointed(every={every!r}): every must be an int >= 1")
        if not isinstance(iterable, Iterable | AsyncIterable):
            raise TypeError(
                f"aiter_checkpointed() needs an iterable or async iterable, "
                f"got {type(iterable).__name__}"
            )
        self._iterable = iterable
        self._every = every
        self._source: Iterator[T] | AsyncIterator[T] | None = None
        self._sync_next: Callable[[], T] | None = None
        self._index = 0
        self._flushed = 0
        self._done = False
        self._item: Any = _MISSING
        self._context = current_execution()
        if self._context is None:  # outside an execution: a plain loop
            return
        self._frame = frame
        self._site = find_site(frame)
        self._label = name or self._site.site
        self._where = f"loop {self._label} ({self._site.location})"  # for error messages
        self._carry_arg = _check_names(carry, frame, self._site, "carry")
        ignored = _check_names(ignore, frame, self._site, "ignore")
        self._ignore = frozenset(() if isinstance(ignored, _Auto) else ignored)
        self._tracks: dict[str, deltas.Track] = {}
        self._layout: dict[str, Any] | None = None  # the layout record this run last wrote
        self._recorded_digest: int | None = None
        self._verified: set[tuple[type, ...]] = set()
        self._types: dict[str, type] = {}  # the type each carried local was classified as
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        self._total: int | None = total
        self._key = self._context.next_position("a checkpointed loop")
        self._open = OpenLoop(self._key, frame, self._site.body)
        decoded = self._restore(self._context)
        self._refuse_unordered()
        self._plan = self._make_plan(decoded)
        self._entry = frames.read_locals(frame, self._plan.names)
        self._audit = audit.Audit.start(self) if audit.enabled() else None
        if not self._done:
            push_loop(self._open)

    # -- iteration ---------------------------------------------------------------

    def __aiter__(self) -> CheckpointedLoop[T]:
        return self

    async def __anext__(self) -> T:
        context = self._context
        if self._done:
            raise StopAsyncIteration
        if self._source is None:
            self._source = await self._position()
        elif context is not None:  # the body of iteration self._index finished
            self._index += 1
            if self._index - self._flushed >= self._every:
                await self._checkpoint(context)
        try:
            if self._sync_next is not None:
                try:
                    item = self._sync_next()
                except StopIteration:
                    raise StopAsyncIteration from None
            else:
                item = await self._source.__anext__()  # type: ignore[union-attr]
        except StopAsyncIteration:
            self._done = True
            if context is not None:
                await self._checkpoint(context)
                pop_loop(self._open)
            raise
        if context is not None:
            self._item = item
            self._open.index = self._index
            events.record(
                events.IterationStarted,
                context.execution_id,
                position=self._key,
                loop=self._label,
                index=self._index,
            )
        return item

    async def _position(self) -> Iterator[T] | AsyncIterator[T]:
        """A source positioned at the first unfinished index. Finished items
        are skipped without running any loop body; the last of them must be
        the item the checkpoint recorded (same digest), or the iterable is
        not giving the same items in the same order."""
        index = self._index
        if isinstance(self._iterable, Iterable):
            sync_source: Iterator[T] = iter(self._iterable)
            if index:
                skipped = list(itertools.islice(sync_source, index - 1, index))
                self._check_order(skipped[0] if skipped else _MISSING)
            self._sync_next = sync_source.__next__
            return sync_source
        source = aiter(self._iterable)
        last: Any = _MISSING
        for _ in range(index):
            try:
                last = await source.__anext__()
            except StopAsyncIteration:
                last = _MISSING
                break
        if index:
            self._check_order(last)
        return source

    def _check_order(self, item: Any) -> None:
        recorded = self._recorded_digest
        if recorded is None or self._context is None:
            return
        found = "nothing (the iterable ran out)" if item is _MISSING else None
        if found is None and ordering.digest(item) == recorded:
            return
        raise NonDeterminismError(
            self._context.execution_id,
            f"{self._where}, item {self._index - 1}",
            "the item the loop finished there before the resume",
            found or f"a different item ({type(item).__name__})",
            "the iterable must give the same items in the same order on replay: sort a "
            "set or a dict built from one (a set of str is ordered by hash, which changes "
            "per process), add ORDER BY to a query, and sort file listings",
        )

    def _refuse_unordered(self) -> None:
        why = ordering.hash_ordered(self._iterable)
        if why is None or self._context is None:
            return
        raise NonDeterminismError(
            self._context.execution_id,
            self._where,
            f"{why} as the iterable",
            "an order that changes with every process",
            f"{why} is ordered by hash, which Python randomises per process "
            "(PYTHONHASHSEED), so a resumed run would skip other items than the ones that "
            "finished: iterate `sorted(...)` of it",
        )

    # -- carrying ----------------------------------------------------------------

    def _make_plan(self, decoded: frozenset[int] = frozenset()) -> carry.CarryPlan:
        """`decoded`: ids of the values a resume just decoded (see carry.classify)."""
        if isinstance(self._carry_arg, tuple):
            return carry.explicit(self._site, self._frame, self._carry_arg, self._ignore)
        return carry.automatic(
            self._site, self._frame, self._ignore, iterable=self._iterable, decoded=decoded
        )

    def _settle(self) -> None:
        """Classify changing locals that were unbound when the loop started
        and are bound now (a client created lazily, a first result)."""
        plan = self._plan
        found = frames.read_locals(self._frame, plan.pending)
        for name, value in found.items():
            change = plan.pending.pop(name)
            decided = carry.classify(self._site, name, value, change)
            if decided == carry.CARRY:
                plan.names.append(name)
            elif decided is not None:
                plan.left_out[name] = decided

    def _reclassify(self, values: dict[str, Any]) -> None:  # changes `values`
        """A carried local that now holds another type is classified again: a
        local rebound to a resource inside the loop is not carried (the body
        re-creates it after a resume), and one that became unpicklable is
        refused here, before anything is written."""
        types = self._types
        for name, value in list(values.items()):
            kind = type(value)
            if types.get(name) is kind:
                continue
            change = self._plan.changes.get(name) or carry.Change()
            decided = carry.classify(self._site, name, value, change)
            if decided == carry.CARRY:
                types[name] = kind
            else:
                del values[name]

    def _restore(self, context: ExecutionContext) -> frozenset[int]:
        """Bring back the loop's checkpoint, if it has one; the ids of the
        values it decoded into the frame."""
        header, chained = records.read_loop(
            context, self._key, wire.LOOP, self._site.site, self._site.location
        )
        if header is None:
            return frozenset()
        loop = wire.LoopHeader.parse(header)
        # `chained`: the header's MAC was checked against its delta records,
        # and covers the values inside it: those and the deltas are written
        # unsigned, and trusted now. Otherwise each needs its own signature.
        in_place = list(loop.same)
        if loop.linked:
            values, in_place = self._load_linked(context, loop.carried, verified=chained)
        else:
            values = (
                records.load_value(context, loop.carried, self._key, verified=chained)
                if loop.carried
                else {}
            )
        code = self._frame.f_code
        known = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
        described = loop.described()
        for name in (*values, *described):
            if name[0] != "$" and name not in known:
                raise NonDeterminismError(
                    context.execution_id,
                    self._where,
                    f"a loop carrying {name!r}",
                    f"a loop of {code.co_qualname} without a local {name!r}",
                )
        for name, how in described.items():
            values[name], self._tracks[name] = deltas.rebuild(
                context.records,
                execution_id=context.execution_id,
                key=self._key,
                name=name,
                described=how,
                load=lambda data, key: records.load_value(context, data, key),
                load_delta=(
                    (lambda data, key: records.load_value(context, data, key, verified=True))
                    if chained
                    else None
                ),
                keep_chain=context.format >= wire.CHAINED_FORMAT and context.codec.signed,
            )
        frames.restore(self._frame, values, in_place)
        # A value restored into the object the frame already held is that
        # object now: its track follows it (or the next checkpoint would
        # write it whole as a new base).
        bound = frames.read_locals(self._frame, self._tracks)
        for name, track in self._tracks.items():
            if bound.get(name, track.value) is not track.value:
                track.value = bound[name]
        self._index = self._flushed = loop.index
        self._done = loop.done
        self._recorded_digest = loop.digest
        events.record(
            events.LoopResumed,
            context.execution_id,
            position=self._key,
            loop=self._label,
            index=self._index,
        )
        restored = frames.read_locals(self._frame, [n for n in values if n[0] != "$"])
        return frozenset(map(id, restored.values()))

    def _load_linked(
        self, context: ExecutionContext, blob: bytes, *, verified: bool
    ) -> tuple[dict[str, Any], list[str]]:
        """Values written by `_encode_linked`: the linked objects are the ones
        the frame holds now (the code before the loop just rebuilt them),
        given their checkpointed contents in place."""
        current = frames.read_locals(self._frame, self._frame.f_code.co_varnames)
        current.update(frames.read_locals(self._frame, self._frame.f_code.co_cellvars))

        def link(name: str) -> Any:
            found = current.get(name, _MISSING)
            if found is _MISSING and name.startswith("$"):
                found = self._frame.f_globals.get(name[1:], _MISSING)
            if found is _MISSING:
                assert self._context is not None
                raise NonDeterminismError(
                    self._context.execution_id,
                    self._where,
                    f"a loop whose {name!r} is bound when it starts",
                    f"a loop whose {name!r} is unbound when it starts",
                )
            return found

        payload = context.codec.loads(
            blob, execution_id=context.execution_id, key=self._key, links=link, verified=verified
        )
        values: dict[str, Any] = dict(payload[wire.LINKED_VALUES])
        for name, state in payload[wire.LINKED_STATES].items():
            target = link(name)
            if not frames.set_state(target, state):
                raise CorruptCheckpoint(
                    context.execution_id,
                    self._key,
                    f"the checkpointed contents of {name!r} do not fit the "
                    f"{type(target).__name__} the code before the loop builds now",
                )
        return values, []

    async def _checkpoint(self, context: ExecutionContext) -> None:
        where = self._where
        plan = self._plan
        frame = self._frame
        if plan.decisive and not carry.still_valid(plan, frame):
            # A callee that proved a local untouched was rebound: decide again.
            self._plan = plan = self._make_plan()
        if plan.pending:
            self._settle()
        values = frames.read_locals(frame, plan.names)
        # One pass over the carried values: a type not seen before is
        # classified again (auto only), and values that are still the objects
        # the loop began with are noted (restored in place on resume).
        types, entry, same = self._types, self._entry, []
        for name, value in values.items():
            kind = type(value)
            if types.get(name) is not kind and self._carry_arg is AUTO:
                self._reclassify(values)
                same = [n for n, v in values.items() if entry.get(n, _MISSING) is v]
                break
            if entry.get(name, _MISSING) is value and kind not in kinds.ATOMS:
                same.append(name)
        puts: dict[str, bytes] = {}
        # The records of the iterations this checkpoint finishes go with it.
        deletes = self._finished_scopes(context)
        tracks = dict(self._tracks) if plan.deltas else self._tracks
        delta_values: dict[str, Any] = {}
        folds: deltas.Folds = {}
        # With a key, format 4 authenticates the iteration's records with one
        # MAC, on the header (see wire.CHAINED_FORMAT).
        chained = context.format >= wire.CHAINED_FORMAT and context.codec.signed
        for name, appends_only in plan.deltas.items():
            value = values.get(name, _MISSING)
            delta_kind = deltas.kind_of(value, appends_only)
            if delta_kind is None:
                continue  # not a container we can diff at run time: carried whole
            del values[name]
            delta_values[name] = value
            tracks[name] = deltas.write(
                tracks.get(name),
                delta_kind,
                value,
                key=self._key,
                name=name,
                dump=functools.partial(_dump_part, context, where, name),
                puts=puts,
                deletes=deletes,
                folds=folds,
                dump_delta=(
                    functools.partial(_dump_part, context, where, name, sign=False)
                    if chained
                    else None
                ),
            )
        if folds:
            await deltas.compress_folds(folds, puts)
        if self._audit is not None:
            self._audit.check(self, delta_values, tracks, puts, deletes)
        linked = bool(self._plan.shared and same)
        header = wire.LoopHeader(
            site=self._site.site,
            index=self._index,
            total=self._total,
            done=self._done,
            appends={},
            deltas={name: track.wire() for name, track in tracks.items()} if tracks else _NO_TRACKS,
            carried=(
                self._encode_linked(context, values, same, where, sign=not chained)
                if linked
                else self._encode(context, values, where, sign=not chained)
                if values or context.format < wire.LAYOUT_FORMAT
                else b""  # nothing carried whole: the field is left out
            ),
            # Still the objects the loop began with: restored in place.
            same=tuple(same),
            linked=linked,
            digest=(
                ordering.digest(self._item) if self._item is not _MISSING and self._index else None
            ),
        )
        layout = header.layout(self._site.location, context.format)
        if layout != self._layout:
            # What rarely changes (site, file:line, how values are written)
            # goes out when it does, not in every iteration's header.
            layout_key = wire.location_key(self._key)
            puts[layout_key] = records.seal(context, layout, layout_key)
            self._layout = layout
        if chained:
            bound = deltas.chain_bound({name: track.chain for name, track in tracks.items()})
            puts[self._key] = context.codec.dumps_chained(
                header.wire(context.format),
                bound,
                execution_id=context.execution_id,
                key=self._key,
            )
        else:
            puts[self._key] = records.seal(context, header.wire(context.format), self._key)
        watched = events.wanted()
        began = time.perf_counter() if watched else 0.0
        await context.write(puts, deletes)
        for track in tracks.values():
            deltas.settle(track)
        self._tracks = tracks
        self._flushed = self._index
        if watched:
            events.record(
                events.CheckpointWritten,
                context.execution_id,
                position=self._key,
                kind="loop",
                index=self._index,
                records=len(puts),
                seconds=time.perf_counter() - began,
            )

    def _finished_scopes(self, context: ExecutionContext) -> list[str]:
        found: list[str] = []
        for index in range(self._flushed, self._index):
            found += context.finish_scope(wire.item_scope("", self._key, index))
        return found

    def _encode_linked(
        self,
        context: ExecutionContext,
        values: dict[str, Any],
        same: list[str],
        where: str,
        *,
        sign: bool,
    ) -> bytes:
        """Carried values that share objects, in one pickle. Those still the
        objects the loop began with are written as their contents, with
        every reference to them (from the other values) kept as a link to
        the name: a resume gives the objects the frame rebuilds those
        contents, and the other values point at them again."""
        links: dict[int, str] = {}
        states: dict[str, Any] = {}
        rebound: dict[str, Any] = {}
        for name, value in values.items():
            state = frames.state_of(value) if name in same else frames.MISSING
            if state is frames.MISSING:
                rebound[name] = value
            else:
                links[id(value)] = name
                states[name] = state
        try:
            return context.codec.dumps_linked(
                {wire.LINKED_VALUES: rebound, wire.LINKED_STATES: states},
                links,
                execution_id=context.execution_id,
                key=self._key,
                sign=sign,
            )
        except UnserializableValue:
            # Name the culprit the usual way.
            return records.dump_values(
                context, values, where, self._key, keep_sharing=True, sign=sign
            )

    def _encode(
        self, context: ExecutionContext, values: dict[str, Any], where: str, *, sign: bool
    ) -> bytes:
        """The values carried whole. Unsigned (`sign=False`) inside a
        chained header, whose MAC covers them."""
        blob = records.dump_values(
            context, values, where, self._key, keep_sharing=self._plan.shared, sign=sign
        )
        if blob[0] != _MSGPACK_TAG and records.is_pickle(blob):
            # A value may pickle but not unpickle (a tqdm bar does): never
            # write one. Checked once per combination of carried types.
            kinds = tuple(type(v) for v in values.values())
            if kinds not in self._verified:
                records.verify(context, blob, values, where, self._key)
                self._verified.add(kinds)
        return blob


def _dump_part(
    context: ExecutionContext, where: str, name: str, value: Any, key: str, *, sign: bool = True
) -> bytes:
    """A record of carried `name` written as deltas (deltas.Dump)."""
    return records.dump_value(context, value, where, name, key, sign=sign)


def _check_names(
    names: _Auto | tuple[str, ...], frame: FrameType, site: LoopSite, argument: str
) -> _Auto | tuple[str, ...]:
    if isinstance(names, _Auto):
        if argument == "ignore":
            raise TypeError("ignore= takes a tuple of variable names, not AUTO")
        return names
    given: object = names  # callers may pass anything at run time
    if isinstance(given, str) or not isinstance(given, tuple | list):
        raise TypeError(
            f"{argument}= takes a tuple of variable names, got {names!r}"
            + (f"; write {argument}=({names!r},)" if isinstance(given, str) else "")
        )
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"{argument}={names!r}: every item must be a variable name (a str)")
    code = frame.f_code
    known = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
    unknown = [n for n in names if n not in known and not n.startswith("$")]
    if unknown:
        raise ValueError(
            f"{argument}={tuple(names)!r} at {site.location}: {', '.join(map(repr, unknown))} "
            f"is not a local variable of {code.co_qualname}"
        )
    return tuple(dict.fromkeys(names))


__all__ = ["AUTO", "CarryAuditError", "CheckpointedLoop", "find_site"]
