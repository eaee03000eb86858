"""Progress read from checkpoint records (`status()`, `show`), bars, and
argument summaries that never run the user's code."""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import cloudpickle
import pytest
from jobs import batch, counted, watched

from resumable import FanoutProgress, MemoryStore, _config, resume, status
from resumable._cli import progress, values
from resumable._cli.console import render_text
from resumable.runtime import wire
from resumable.runtime.wire import LoopProgress, Progress, read_progress
from resumable.stores.codec import Codec
from resumable.testing import SimulatedCrash, crash_after


class TestFanoutProgress:
    """status() reports each amap/agather: done, failed, in flight, pending."""

    async def test_after_a_crash(self, store):
        with crash_after(3), pytest.raises(SimulatedCrash) as crash:
            await batch.mapped.options(execution_id="m", store=store)(40)
        found = await status("m", store=store)
        # Our own lease, still live in the store, but no run here holds it:
        # the owner is gone, as `resume` and `recover` here would also decide.
        assert found.status == "running" and found.lease_expires_at > time.time()
        assert found.orphaned
        await store.release(crash.value.lease)
        found = await status("m", store=store)
        assert found.orphaned
        [fanout] = found.fanouts
        assert (fanout.kind, fanout.position, fanout.total) == ("amap", "#0", 40)
        assert 0 < fanout.done < 40 and fanout.failed == 0
        assert fanout.in_flight == 0  # nobody runs it now
        assert fanout.pending == 40 - fanout.done and not fanout.finished

    async def test_while_it_runs(self, store):
        run = await watched.watched.options(store=store).start(30, 0.01)
        for _ in range(500):
            found = await status(run.id, store=store)
            if found.fanouts and 0 < found.fanouts[0].done < 30:
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError("the amap never showed progress")
        fanout = found.fanouts[0]
        assert fanout.in_flight == min(4, 30 - fanout.done)  # concurrency=4
        assert fanout.pending == 30 - fanout.done - fanout.in_flight
        [loop] = found.progress
        assert loop.finished and loop.done == 30
        await run.result()
        [fanout] = (await status(run.id, store=store)).fanouts
        assert (fanout.done, fanout.in_flight, fanout.pending, fanout.finished) == (30, 0, 0, True)

    async def test_gather_and_failures_are_counted(self, store):
        await batch.gathered.options(execution_id="g", store=store)(5)
        [gather] = (await status("g", store=store)).fanouts
        assert (gather.kind, gather.done, gather.total) == ("agather", 5, 5)
        progress_ = FanoutProgress("#0", "amap", "s", "f.py:1", 10, 6, 2, 1)
        assert progress_.pending == 1 and not progress_.finished

    async def test_unreadable_headers_are_counted(self, store):
        await batch.mapped.options(execution_id="u", store=store)(3)
        records = await store.load("u")
        found = read_progress("u", records, Codec(secret_key=b"other"), live=False)
        assert found.fanouts == () and found.unreadable == 1
        # Signed by default on SQLite (the per-user key) and Redis (the suite's
        # key), so refused as signed with another key; a memory store's as unsigned.
        signed = _config.codec_for(store).signed
        reason = "signature does not match" if signed else "not signed"
        assert reason in (found.first_error or "")
        lines = drawn(found, 100)
        assert lines[0].startswith("  progress unreadable: 1 record(s)")


def drawn(found, width, bars=None, **options):
    """The rows `show` prints for `found` on a plain terminal `width` wide."""
    view = (bars or progress.Bars(**options)).view(found)
    return render_text(view, width).splitlines()


class TestBars:
    """Bars, counts and the choice of what to show."""

    def test_bar_is_rich_and_ascii_without_unicode(self):
        entry = FanoutProgress("#0", "amap", "amap(f)", "f.py:1", 10, 5, 1, 2)
        found = Progress(fanouts=(entry,))
        [line] = drawn(found, 200)
        assert "━" in line and "5/10   60%" in line
        [plain] = render_text(progress.Bars().view(found), 200, encoding="ascii").splitlines()
        assert "━" not in plain and "-" in plain and "5/10   60%" in plain

    def test_lines_fit_the_width_and_cut_extras_first(self):
        entry = FanoutProgress("#0", "amap", "amap(embed)", "/x/f.py:9", 200, 104, 0, 8)
        found = Progress(fanouts=(entry,))
        [wide] = drawn(found, 200)
        assert "104/200   52%  8 running, 88 pending, 0 failed" in wide
        [narrow] = drawn(found, 70, show_location=False)
        assert len(narrow) <= 70 and "━" in narrow and "104/200" in narrow

    def test_finished_nested_entries_are_summarised(self):
        loops = [LoopProgress("#0", "f:loop0(i)", "f.py:1", 50, 50, True)]
        loops += [
            LoopProgress(f"#0[{i}]/#0", "f:loop1(j)", "f.py:3", 4, 4, True) for i in range(50)
        ]
        loops.append(LoopProgress("#0[50]/#0", "f:loop1(j)", "f.py:3", 2, 4, False))
        lines = drawn(Progress(loops=tuple(loops)), 120)
        assert len(lines) == 3
        assert "#0[50]/#0" in lines[1]
        assert lines[2] == "  ... and 50 more (finished nested loops and maps: see --json)"

    def test_rate_and_eta_once_measured(self):
        """rich measures the speed from the counts it was given over time."""
        bars = progress.Bars()
        entry = LoopProgress("#0", "f:loop0(i)", "f.py:1", 10, 100, False)
        [first] = drawn(Progress(loops=(entry,)), 200, bars)
        assert "/s" not in first
        time.sleep(0.2)
        middle = LoopProgress("#0", "f:loop0(i)", "f.py:1", 20, 100, False)
        drawn(Progress(loops=(middle,)), 200, bars)
        time.sleep(0.2)
        later = LoopProgress("#0", "f:loop0(i)", "f.py:1", 30, 100, False)
        [measured] = drawn(Progress(loops=(later,)), 200, bars)
        assert re.search(r"\d+\.\d/s  eta \d", measured), measured

    def test_unknown_total_has_no_bar(self):
        entry = LoopProgress("#0", "f:loop0(i)", "f.py:1", 7, None, False)
        [line] = drawn(Progress(loops=(entry,)), 200)
        assert "7 done" in line and "━" not in line


@dataclass
class Account:
    owner: str
    balance: int


class Bag(list):
    """Unpickled with APPENDS: the stand-in must take them."""


class Hostile:
    def __reduce__(self):
        return (os.system, ("exit 3",))


class TestArgumentSummary:
    """Types and sizes come out of any blob; values and code never do."""

    def summary(self, *args, codec: Codec | None = None, **kwargs):
        return values.summary((codec or Codec()).dumps((args, kwargs)))

    def test_plain_data(self):
        assert self.summary("abc", [1, 2], (1,), {3}, 2**80, b"xy", None, flag=True) == [
            ("args[0]", "str, 3 chars"),
            ("args[1]", "list, 2 items"),
            ("args[2]", "tuple, 1 item"),
            ("args[3]", "set, 1 item"),
            ("args[4]", "int"),
            ("args[5]", "bytes, 2 bytes"),
            ("args[6]", "NoneType"),
            ("flag", "bool"),
        ]

    def test_pickled_objects_are_named_not_built(self):
        summary = self.summary(
            Account("ann", 3), lambda x: x, Hostile, Bag([1, 2]), OrderedDict(a=1)
        )
        assert summary == [
            ("args[0]", "test_progress.Account (pickled)"),
            ("args[1]", "function or class (pickled by value)"),
            ("args[2]", "class test_progress.Hostile"),
            ("args[3]", "test_progress.Bag (pickled)"),
            ("args[4]", "collections.OrderedDict (pickled)"),
        ]

    def test_signed_blobs(self):
        codec = Codec(secret_key=b"k")
        assert self.summary(Account("a", 1), codec=codec) == [
            ("args[0]", "test_progress.Account (pickled)")
        ]

    def test_hostile_pickle_is_inert(self):
        blob = b"p" + pickle.dumps(((Hostile(),), {}))
        assert values.summary(blob)[0][1] in ("posix.system (pickled)", "nt.system (pickled)")
        blob = b"p" + cloudpickle.dumps(((Hostile(),), {}))
        assert "system (pickled)" in values.summary(blob)[0][1]

    def test_values_really_decode(self):
        blob = Codec().dumps(((Account("ann", 3),), {}))
        assert values.values(blob, Codec(), "x") == [("args[0]", "Account(owner='ann', balance=3)")]
        assert values.size(blob).endswith("bytes")


class _Counting:
    """A real store whose load() and load_headers() calls are counted (and
    passed through: nothing is faked)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.loads = self.header_loads = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def load(self, execution_id):
        self.loads += 1
        return await self.inner.load(execution_id)

    async def load_headers(self, execution_id):
        self.header_loads += 1
        return await self.inner.load_headers(execution_id)


def item_counts(records: dict[str, bytes]) -> dict[str, tuple[int, int]]:
    """(done, failed) per fan-out, counted from its item records."""
    counts: dict[str, list[int]] = {}
    for key, data in records.items():
        parsed = wire.parse_key(key)
        if parsed.kind == "item":
            counts.setdefault(parsed.position, [0, 0])[data[:1] == wire.OUTCOME_ERROR] += 1
    return {position: (done, failed) for position, (done, failed) in counts.items()}


async def header_counts(store, execution_id: str) -> dict[str, tuple[int, int]]:
    """(done, failed) per fan-out, as its header says (headers only)."""
    found = read_progress(
        execution_id, await store.load_headers(execution_id), _config.codec_for(store), live=False
    )
    assert not found.needs_items
    return {f.position: (f.done, f.failed) for f in found.fanouts}


class TestHeaderCounts:
    """Fan-out headers carry the item counts, so progress reads headers only."""

    async def test_status_does_not_load_the_records(self, store):
        with crash_after(4), pytest.raises(SimulatedCrash) as crash:
            await batch.mapped.options(execution_id="m", store=store)(40)
        await store.release(crash.value.lease)
        counting = _Counting(store)
        found = await status("m", store=counting)
        assert (counting.loads, counting.header_loads) == (0, 1)
        [fanout] = found.fanouts
        assert 0 < fanout.done < 40
        assert item_counts(await store.load("m")) == {"#0": (fanout.done, 0)}

    async def test_counts_across_crashes_and_resumes(self, store):
        execution_id = uuid.uuid4().hex
        with crash_after(3), pytest.raises(SimulatedCrash) as crash:
            await counted.mixed.options(execution_id=execution_id, store=store)(60)
        await store.release(crash.value.lease)
        first = item_counts(await store.load(execution_id))
        assert await header_counts(store, execution_id) == first
        assert 0 < sum(first["#0"]) < 60
        with crash_after(2), pytest.raises(SimulatedCrash) as crash:
            await resume(execution_id, store=store)
        await store.release(crash.value.lease)
        second = item_counts(await store.load(execution_id))
        assert await header_counts(store, execution_id) == second
        assert sum(first["#0"]) < sum(second["#0"]) < 60  # the first attempt's count carried on
        assert await resume(execution_id, store=store) == 15
        assert item_counts(await store.load(execution_id)) == {"#0": (45, 15)}
        assert await header_counts(store, execution_id) == {"#0": (45, 15)}
        [fanout] = (await status(execution_id, store=store)).fanouts
        assert (fanout.done, fanout.failed, fanout.finished) == (45, 15, True)

    async def test_every_write_leaves_the_header_equal_to_the_items(self):
        """Group commit merges several items (and their headers) into one
        write: the header that lands must be the one with the highest counts."""
        merged: list[int] = []

        class Checking(MemoryStore):
            async def write(self, lease, puts, deletes=()):
                await super().write(lease, puts, deletes)
                merged.append(sum(wire.parse_key(key).kind == "item" for key in puts))
                records = await self.load(lease.execution_id)
                assert await header_counts(self, lease.execution_id) == item_counts(records)

        store = Checking()
        assert await counted.mixed.options(store=store)(200) == 50
        assert max(merged) > 1, "no write held several items: the test proves nothing"
