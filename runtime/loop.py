"""The iterator behind `aiter_checkpointed`.

Built in the user's frame while it executes the call that feeds an
`async for`, it (1) finds the loop and its carried locals from the bytecode
(cached per code object and call site), (2) on replay writes the carried
values of the last checkpoint back into the frame and positions the source
at the first unfinished index, and (3) after each finished iteration (or
every `every`) writes one atomic checkpoint: the next index, the carried
values, and for lists the body only appends to, just the new items.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from types import FrameType
from typing import Any, Final, Generic, TypeVar

from resumable.errors import CorruptCheckpoint, NonDeterminismError
from resumable.runtime import events, frames, records
from resumable.runtime.context import (
    ExecutionContext,
    OpenLoop,
    current_execution,
    pop_loop,
    push_loop,
)
from resumable.runtime.loopsite import LoopSite, loop_site

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

# Values of these types are state, whatever method the body calls on them.
_DATA_TYPES = (list, dict, set, bytearray, deque, Counter, OrderedDict, defaultdict)
_MISSING = object()


def _is_data(value: object) -> bool:
    return isinstance(value, _DATA_TYPES) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


@dataclasses.dataclass(slots=True)
class _AppendTrack:
    """Where an append-only list stood at its last checkpoint."""

    seq: int  # last delta record written (0 = the base snapshot)
    value: list[Any]
    length: int
    tail: object  # identity of the last item, to notice replaced items


class CheckpointedLoop(AsyncIterator[T], Generic[T]):
    """Async iterator that checkpoints the calling frame's loop state."""

    def __init__(
        self,
        iterable: Iterable[T] | AsyncIterable[T],
        *,
        carry: _Auto | tuple[str, ...],
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
        self._context = current_execution()
        if self._context is None:  # outside an execution: a plain loop
            return
        self._frame = frame
        self._site = loop_site(frame.f_code, frame.f_lasti)
        self._label = name or self._site.site
        self._where = f"loop {self._label} ({self._site.location})"  # for error messages
        self._names, self._weak, self._append = _carried(self._site, carry, frame)
        self._read = self._names + self._weak
        self._tracks: dict[str, _AppendTrack] = {}
        self._located = False  # has this run written the loop's location record?
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        self._total: int | None = total
        self._key = self._context.next_position()
        self._open = OpenLoop(self._key, frame, self._site.body)
        self._restore(self._context)
        if not self._done:
            push_loop(self._open)

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
        are skipped without running any loop body; deterministic iterables
        are required (the same items in the same order on replay)."""
        if isinstance(self._iterable, Iterable):
            sync_source = itertools.islice(self._iterable, self._index, None)
            self._sync_next = sync_source.__next__
            return sync_source
        source = aiter(self._iterable)
        for _ in range(self._index):
            try:
                await source.__anext__()
            except StopAsyncIteration:
                break
        return source

    def _restore(self, context: ExecutionContext) -> None:
        header = records.read(context, self._key, "loop", self._site.site, self._site.location)
        if header is None:
            return
        values = records.load_value(context, header["c"], self._key)
        recorded = set(values) | set(header["a"])
        current = set(self._names) | set(self._weak)
        if not recorded <= current:
            raise NonDeterminismError(
                context.execution_id,
                f"loop {self._label} ({self._site.location})",
                f"a loop carrying {', '.join(sorted(recorded))}",
                f"a loop carrying {', '.join(sorted(current)) or 'nothing'}",
            )
        for name, last in header["a"].items():
            values[name] = items = self._rebuild(context, name, last)
            self._tracks[name] = _AppendTrack(last, items, len(items), items[-1] if items else None)
        frames.write_locals(self._frame, values)
        self._located = True
        self._index = self._flushed = header["i"]
        self._done = header["d"]
        events.record(
            events.LoopResumed,
            context.execution_id,
            position=self._key,
            loop=self._label,
            index=self._index,
        )

    def _rebuild(self, context: ExecutionContext, name: str, last: int) -> list[Any]:
        """An append-only list from its base and deltas: one record per
        checkpoint, so this loop runs once per finished iteration on resume
        (100,000 times for a long loop) and is kept tight."""
        items: list[Any] = []
        extend, stored, loads = items.extend, context.records.get, context.codec.loads
        execution_id, prefix = context.execution_id, f"{self._key}+{name}."
        for seq in range(last + 1):
            key = prefix + str(seq)
            data = stored(key)
            if data is None:
                raise CorruptCheckpoint(execution_id, key, "a delta record of this list is missing")
            extend(loads(data, execution_id=execution_id, key=key))
        return items

    async def _checkpoint(self, context: ExecutionContext) -> None:
        where = self._where
        values = frames.read_locals(self._frame, self._read)
        for name in self._weak:
            if name in values and not _is_data(values[name]):
                del values[name]  # a client or session, say: not state
        puts: dict[str, bytes] = {}
        deletes: list[str] = []
        tracks = dict(self._tracks) if self._append else self._tracks
        for name in self._append:
            value = values.get(name, _MISSING)
            if type(value) is not list:
                continue  # not a list at run time (a deque, say): carried whole
            del values[name]
            tracks[name] = self._append_delta(context, name, value, puts, deletes, where)
        if not self._located:
            # file:line goes out once per loop, not in every iteration's header.
            located = f"{self._key}@"
            puts[located] = records.seal(context, {"w": self._site.location}, located)
            self._located = True
        header = {
            "k": "loop",
            "s": self._site.site,
            "i": self._index,
            "n": self._total,
            "d": self._done,
            "c": records.dump_values(context, values, where, self._key),
            "a": {name: track.seq for name, track in tracks.items()},
        }
        puts[self._key] = records.seal(context, header, self._key)
        watched = events.wanted()
        began = time.perf_counter() if watched else 0.0
        await context.write(puts, deletes)
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

    def _append_delta(  # noqa: PLR0917
        self,
        context: ExecutionContext,
        name: str,
        value: list[Any],
        puts: dict[str, bytes],
        deletes: list[str],
        where: str,
    ) -> _AppendTrack:
        track = self._tracks.get(name)
        grown = (
            track is not None
            and track.value is value
            and len(value) >= track.length
            and (track.length == 0 or value[track.length - 1] is track.tail)
        )
        if track is not None and grown:
            if len(value) == track.length:
                return track
            seq = track.seq + 1
            new = value[track.length :]
        else:
            # First checkpoint, or the list was replaced or edited in place:
            # write it whole as the new base and drop the old deltas.
            if track is not None:
                deletes.extend(f"{self._key}+{name}.{s}" for s in range(1, track.seq + 1))
            seq = 0
            new = value
        delta_key = f"{self._key}+{name}.{seq}"
        puts[delta_key] = records.dump_value(context, list(new), where, name, delta_key)
        return _AppendTrack(seq, value, len(value), value[-1] if value else None)


def _carried(
    site: LoopSite, carry: _Auto | tuple[str, ...], frame: FrameType
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(always-carried names, names carried when their value is data,
    append-only lists checkpointed as deltas)."""
    if isinstance(carry, _Auto):
        return site.strong, site.weak, tuple(sorted(site.append_only))
    if not isinstance(carry, tuple) or not all(isinstance(n, str) for n in carry):
        raise TypeError(f"carry must be AUTO or a tuple of variable names, got {carry!r}")
    code = frame.f_code
    known = set(code.co_varnames) | set(code.co_cellvars) | set(code.co_freevars)
    unknown = [n for n in carry if n not in known]
    if unknown:
        raise ValueError(
            f"carry={carry!r} at {site.location}: {', '.join(map(repr, unknown))} "
            f"is not a local variable of {code.co_qualname}"
        )
    names = tuple(dict.fromkeys(carry))
    return names, (), tuple(sorted(site.append_only & set(names)))
