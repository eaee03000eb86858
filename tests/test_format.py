"""The checkpoint record format (runtime/wire.py): its keys, its headers
pinned byte for byte, its version, stores written by the first release, and
compaction at completion."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Final

import pytest
from jobs import batch, compaction, format1, format2

from resumable import (
    CheckpointError,
    CorruptCheckpoint,
    FormatVersionError,
    MemoryStore,
    RecordTooLarge,
    SQLiteStore,
    _config,
    resume,
    status,
)
from resumable.runtime import wire
from resumable.stores import checks
from resumable.stores.codec import Codec
from resumable.testing import SimulatedCrash, crash_after, run_to_completion_with_crashes

DATA = Path(__file__).parent / "data"


class TestKeys:
    def test_every_builder_parses_back(self):
        top = wire.position("", 3)
        inner = wire.position(wire.item_scope("", "#0", 5), 1)
        assert (top, inner) == ("#3", "#0[5]/#1")
        cases = {
            top: wire.ParsedKey("header", "#3"),
            inner: wire.ParsedKey("header", "#0[5]/#1"),
            wire.location_key(inner): wire.ParsedKey("location", inner),
            wire.delta_key(inner, "results", 17): wire.ParsedKey(
                "delta", inner, name="results", seq=17
            ),
            wire.item_key(top, 9): wire.ParsedKey("item", "#3", index=9),
            wire.memo_key("fetch", "ab12"): wire.ParsedKey("memo", "memo:fetch:ab12"),
        }
        for key, parsed in cases.items():
            assert wire.parse_key(key) == parsed, key

    def test_the_grammar_is_pinned(self):
        assert wire.location_key("#2") == "#2@"
        assert wire.delta_key("#2", "out", 0) == "#2+out.0"
        assert wire.delta_prefix("#2", "out") == "#2+out."
        assert wire.item_key("#0[1]/#4", 12) == "#0[1]/#4=12"
        assert wire.item_position("#4", 12) == "#4[12]"

    @pytest.mark.parametrize("key", ["", "#", "#x", "3", "#1+", "#1=a", "##1", "#1[2]#3"])
    def test_anything_else_is_unknown(self, key):
        assert wire.parse_key(key).kind == "unknown"

    def test_the_stores_header_rule_agrees_with_the_grammar(self):
        """Stores pick `load_headers` keys by stores/checks.py's rule, not by
        parsing: for every kind of key the two must say the same."""
        inner = wire.position(wire.item_scope("", "#0", 5), 1)
        keys = [
            "#3",
            inner,
            wire.location_key(inner),
            wire.delta_key(inner, "results", 17),
            wire.chunk_key("#3", "rows", 2),
            wire.item_key(inner, 9),
            wire.memo_key("fetch", "ab12"),
        ]
        for key in keys:
            parsed = wire.parse_key(key).kind
            assert checks.is_header_key(key) == (parsed in ("header", "location")), key
            if not checks.is_header_key(key):
                assert checks.past_non_headers(key) > key

    def test_positions_sort_in_program_order(self):
        found = sorted(["#10", "#2", "#1[3]/#0", "#1"], key=wire.position_order)
        assert found == ["#1", "#1[3]/#0", "#2", "#10"]


# Every header kind, encoded by an unkeyed codec. A change to what is
# written changes these bytes: bump FORMAT_VERSION and teach the reader the
# old shape before changing them.
_LOOP = wire.LoopHeader(
    site="f:loop0(i)",
    index=7,
    total=20,
    done=False,
    appends={},
    carried=b"m\x81\xa5total\x15",
    same=("seen",),
    digest=12345,
    deltas={"out": ["list", 3, 1000]},
)

GOLDEN = {
    # Format 4: what changes every iteration, as an array ([index, seqs,
    # digest, {the rest}]; the one header without a KIND), and the layout.
    "loop": (
        _LOOP.wire(),
        "6d94079103cd303981a163c4096d81a5746f74616c15",
    ),
    # What an execution created in format 3 goes on writing.
    "loop, format 3": (
        _LOOP.wire(3),
        "6d85a16ba46c6f6f70a16907a163c4096d81a5746f74616c15a1719103a168cd3039",
    ),
    "layout": (
        _LOOP.layout("j.py:2"),
        "6d85a173aa663a6c6f6f7030286929a177a66a2e70793a32a16e14"
        "a17981a36f757492a46c697374cd03e8a16591a47365656e",
    ),
    # What an execution created in format 2 goes on writing.
    "loop, format 2": (
        _LOOP.wire(2),
        "6d89a16ba46c6f6f70a173aa663a6c6f6f7030286929"
        "a16907a16e14a164c2a163c4096d81a5746f74616c15"
        "a17481a36f757493a46c69737403cd03e8a16591a47365656ea168cd3039",
    ),
    # The item counts (i, x) joined within format 2: format-1 readers ignore
    # unknown header fields, so it stays FORMAT_VERSION 2.
    "map": (
        wire.FanoutHeader(
            "map", "amap(f)", "j.py:3", 10, 2, 4, items_done=5, items_failed=1
        ).wire(),
        "6d88a16ba36d6170a173a7616d6170286629a177a66a2e70793a33a16e0aa16602a16304a16905a17801",
    ),
    "step": (
        wire.step_header("fetch", "j.py:9", b"r" + b"m\xa2ok"),
        "6d84a16ba473746570a173a56665746368a177a66a2e70793a39a172c4046da26f6b",
    ),
    "value": (
        wire.value_header(wire.JOURNALED, "now", "j.py:4", 1.5),
        "6d84a16ba576616c7565a173a36e6f77a177a66a2e70793a34a176cb3ff8000000000000",
    ),
    "child": (
        wire.child_header("jobs:child", "j.py:5", "p/0"),
        "6d84a16ba56368696c64a173aa6a6f62733a6368696c64a177a66a2e70793a35a163a3702f30",
    ),
    "layout, format 2": (_LOOP.layout("j.py:2", 2), "6d81a177a66a2e70793a32"),
}


class TestGoldenBlobs:
    @pytest.mark.parametrize("kind", sorted(GOLDEN))
    def test_headers_are_written_byte_for_byte(self, kind):
        header, pinned = GOLDEN[kind]
        assert Codec().dumps_plain(header).hex() == pinned

    def test_a_chained_loop_header_is_written_byte_for_byte(self):
        # Format 4 with a key: "c", a 16-byte MAC over the place, the bound
        # chains and the header, then the header as an unkeyed codec writes it.
        codec = Codec(secret_key=b"k" * 32)
        bound = b"3:out32:" + bytes(range(32))
        blob = codec.dumps_chained(_LOOP.wire(), bound, execution_id="x", key="#0")
        assert blob.hex() == "6318cd6e9ca6f3d6118763f5c4ae78fedb6d" + GOLDEN["loop"][1][2:]
        assert codec.open_chained(blob, bound, execution_id="x", key="#0") == _LOOP.wire()

    @pytest.mark.parametrize("format", [2, 3, 4])
    def test_the_loop_header_reads_back_with_its_layout(self, format):
        codec = Codec()
        header = wire.check_header("x", "#0", codec.loads(codec.dumps_plain(_LOOP.wire(format))))
        layout = codec.loads(codec.dumps_plain(_LOOP.layout("j.py:2", format)))
        parsed = wire.LoopHeader.parse(wire.with_layout("x", "#0", header, layout))
        assert parsed == dataclasses.replace(_LOOP, location="j.py:2")

    def test_a_header_without_its_layout_is_refused(self):
        header = wire.check_header("x", "#0", _LOOP.wire())
        with pytest.raises(CorruptCheckpoint, match=r"layout record \(#0@\) is missing"):
            wire.with_layout("x", "#0", header, None)
        layout = _LOOP.layout("j.py:2")
        layout[wire.DELTA_KINDS] = {}
        with pytest.raises(CorruptCheckpoint, match="do not match its layout"):
            wire.with_layout("x", "#0", header, layout)


class TestVersion:
    async def test_new_executions_record_the_current_format(self, sqlite):
        await compaction.counting.options(store=sqlite, execution_id="v")(3)
        record = await sqlite.get("v")
        assert record is not None and record.format == wire.FORMAT_VERSION == 4

    async def test_a_newer_format_is_refused_naming_both(self, tmp_path):
        path = tmp_path / "state.db"
        store = SQLiteStore(path)
        execution_id = uuid.uuid4().hex
        await compaction.counting.options(store=store, execution_id=execution_id)(3)
        await store.close()
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("UPDATE executions SET format = 7 WHERE id = ?", (execution_id,))
        store = SQLiteStore(path)
        try:
            with pytest.raises(FormatVersionError) as caught:
                await resume(execution_id, store=store)
            assert (caught.value.found, caught.value.supported) == (7, wire.FORMAT_VERSION)
            assert "format 7" in str(caught.value) and "format 4" in str(caught.value)
            seen = await status(execution_id, store=store)  # still listed, progress withheld
            assert seen.status == "completed"
        finally:
            await store.close()


# The fixtures' stored fingerprints are of 3.11 bytecode: other versions keep
# the checkpoints (the loops line up by site) instead of refusing.
FIXTURE_MODE: Final = "error" if sys.version_info[:2] == (3, 11) else "continue"


@contextlib.asynccontextmanager
async def _fixture_copy(tmp_path: Path, name: str) -> AsyncIterator[SQLiteStore]:
    """A store on a copy of tests/data/`name` (tests change what they open).

    Older releases wrote these files unsigned: reading them takes the
    documented opt-in, allow_unsigned, until `resumable migrate --sign`
    signs them."""
    path = tmp_path / "state.db"
    shutil.copyfile(DATA / name, path)
    store = SQLiteStore(path)
    _config.configure(allow_unsigned=True)
    try:
        yield store
    finally:
        await store.close()
        _config.reset()


class TestFirstReleaseStore:
    """tests/data/format-1.db was written by the first release (commit
    31d2c57, CPython 3.11): `jobs.format1.pipeline(20)` ran its step and its
    amap, then 6 iterations of its loop, and was stopped (lease released)."""

    @pytest.fixture(name="old_store")
    async def _old_store(self, tmp_path):
        async with _fixture_copy(tmp_path, "format-1.db") as store:
            yield store

    async def test_its_fanout_counts_come_from_the_item_records(self, old_store):
        """Format-1 fan-out headers hold counts that were inexact across
        resumes (an earlier attempt's failures counted as done): status()
        does not trust them and counts the item records instead."""
        headers = await old_store.load_headers("format-1-run")
        from_headers = wire.read_progress(
            "format-1-run", headers, Codec(), live=False, format=wire.FIRST_FORMAT
        )
        assert from_headers.needs_items and [f.done for f in from_headers.fanouts] == [0]
        [fanout] = (await status("format-1-run", store=old_store)).fanouts
        assert (fanout.kind, fanout.done, fanout.failed, fanout.total) == ("amap", 20, 0, 20)

    async def test_it_resumes_exactly(self, old_store):
        record = await old_store.get("format-1-run")
        assert record is not None and (record.format, record.status) == (1, "running")
        format1.RAN.clear()
        result = await resume("format-1-run", store=old_store, on_code_change=FIXTURE_MODE)
        assert result == format1.expected(20)
        assert list(range(6, 20)) == format1.RAN  # the 6 finished iterations did not run again
        done = await status("format-1-run", store=old_store)
        assert done.status == "completed"


class TestFormat2Store:
    """tests/data/format-2.db was written in record format 2 (commit
    36ef459, CPython 3.11): `jobs.format2.building(2600)` ran its step and
    its amap, then 2,316 iterations of its loop, whose list, dict (with
    deletions) and set had been folded into chunks, and was stopped (lease
    released). Format 3 moved a loop's unchanging fields into its layout
    record; this store has them in every header."""

    @pytest.fixture(name="old_store")
    async def _old_store(self, tmp_path):
        async with _fixture_copy(tmp_path, "format-2.db") as store:
            yield store

    async def test_it_resumes_exactly_and_goes_on_in_format_2(self, old_store):
        [loop] = (await status("format-2-run", store=old_store)).progress
        assert (loop.done, loop.total) == (2316, format2.N)
        format2.RAN.clear()
        with crash_after(5), pytest.raises(SimulatedCrash) as crash:
            await resume("format-2-run", store=old_store, on_code_change=FIXTURE_MODE)
        await old_store.release(crash.value.lease)
        records = await old_store.load("format-2-run")
        codec = Codec()
        header = codec.loads(records["#2"])
        layout = codec.loads(records["#2@"])
        assert header[wire.SITE] and header[wire.INDEX] > 2316 and set(layout) == {wire.WHERE}
        record = await old_store.get("format-2-run")
        assert record is not None and record.format == 2
        ran_before = list(format2.RAN)
        format2.RAN.clear()
        result = await resume("format-2-run", store=old_store, on_code_change=FIXTURE_MODE)
        assert result == format2.expected(format2.N)
        # Every iteration ran once after the fixture's 2,316 (the one the
        # crash interrupted ran again, as an unfinished iteration does).
        assert sorted(set(ran_before + format2.RAN)) == list(range(2316, format2.N))
        assert format2.RAN[-1] == format2.N - 1


def _expected_nested(n: int) -> tuple[list[int], list[int]]:
    sizes = [len(f"result {i}") + 3 for i in range(n)]
    sums = [sum(len(f"result {100 * i + j}") for j in range(i + 1)) for i in range(n)]
    return sizes, sums


class TestFinishedScopes:
    """The records made inside a loop iteration or fan-out item (its steps,
    inner loops, journaled values) go in the write that records it finished:
    a resume never runs a finished iteration or item again, so a step in
    every iteration must not leave one record per iteration behind."""

    async def test_a_step_per_iteration_leaves_only_the_one_in_flight(self):
        store = MemoryStore()
        compaction.STEPS_RUN.clear()
        with crash_after(40), pytest.raises(SimulatedCrash) as crash:
            await compaction.step_per_iteration.options(store=store, execution_id="s")(100)
        records = await store.load("s")
        scoped = sorted(k for k in records if "/" in k)
        # 40 writes: 20 steps and 20 loop checkpoints; iteration 20's step
        # ran, and its record was the 41st write, which crashed.
        assert scoped == [], scoped
        await store.release(crash.value.lease)
        result = await resume("s", store=store)
        assert result == [f"result {i}" for i in range(100)]
        # Only the step in flight at the crash ran again.
        assert [*range(21), *range(20, 100)] == compaction.STEPS_RUN
        assert not [k for k in await store.load("s") if "/" in k]

    async def test_a_crash_between_step_and_checkpoint_replays_the_step(self):
        store = MemoryStore()
        compaction.STEPS_RUN.clear()
        with crash_after(41), pytest.raises(SimulatedCrash) as crash:
            await compaction.step_per_iteration.options(store=store, execution_id="t")(30)
        assert [k for k in await store.load("t") if "/" in k] == ["#0[20]/#0"]
        await store.release(crash.value.lease)
        assert await resume("t", store=store) == [f"result {i}" for i in range(30)]
        assert list(range(30)) == compaction.STEPS_RUN

    @pytest.mark.parametrize("point", range(0, 130, 4))
    async def test_nested_scopes_with_a_crash_anywhere(self, point):
        store = MemoryStore()
        run = await run_to_completion_with_crashes(
            compaction.nested, 6, crash_points=[point], store=store
        )
        assert run.result == _expected_nested(6)
        left = [k for k in await store.load(run.execution_id) if "/" in k]
        assert left == [], left

    async def test_journaled_values_of_finished_iterations_are_not_written(self):
        store = MemoryStore()
        with crash_after(10), pytest.raises(SimulatedCrash) as crash:
            await compaction.stamped.options(store=store, execution_id="n")(50)
        assert not [k for k in await store.load("n") if "/" in k]
        await store.release(crash.value.lease)
        assert await resume("n", store=store) == [True] * 50

    async def test_keep_checkpoints_keeps_them(self):
        store = MemoryStore()
        await compaction.step_per_iteration_kept.options(store=store, execution_id="k")(5)
        scoped = sorted(k for k in await store.load("k") if "/" in k)
        assert scoped == [f"#0[{i}]/#0" for i in range(5)]

    async def test_resume_reads_no_finished_scope(self, tmp_path):
        """What a resume loads grows with the carried values, not with the
        number of steps that ran in finished iterations."""
        store = SQLiteStore(tmp_path / "s.db")
        try:
            with crash_after(2 * 500 + 1), pytest.raises(SimulatedCrash) as crash:
                await compaction.step_per_iteration.options(store=store, execution_id="r")(1000)
            await store.release(crash.value.lease)
            kinds = [wire.parse_key(k).kind for k in await store.load("r")]
            assert kinds.count("header") == 2  # the loop's, and the step in flight
        finally:
            await store.close()


class TestRecordCap:
    async def test_a_record_over_the_cap_is_a_checkpoint_error(self):
        """The cap holds for every record kind; going over it ends the run
        with RecordTooLarge (a CheckpointError, and a ValueError as before)."""
        store = MemoryStore(max_record_bytes=150)  # a 200-byte result's delta is over it
        with pytest.raises(RecordTooLarge) as refused:
            await compaction.appending.options(store=store, execution_id="big")(3)
        assert isinstance(refused.value, CheckpointError)
        assert refused.value.key == "#0+results.0" and refused.value.limit == 150
        assert (await status("big", store=store)).status == "failed"


class TestCompactionAtCompletion:
    async def test_only_a_summary_is_kept_and_progress_still_reads(self, sqlite):
        execution_id = uuid.uuid4().hex
        assert await compaction.counting.options(store=sqlite, execution_id=execution_id)(50)
        records = await sqlite.load(execution_id)
        kinds = {wire.parse_key(key).kind for key in records}
        assert kinds == {"header"}  # no deltas, items or locations left
        progress = (await status(execution_id, store=sqlite)).progress
        assert [(p.done, p.total, p.finished) for p in progress] == [(50, 50, True)]

    async def test_a_fanout_keeps_its_counts(self, sqlite):
        execution_id = uuid.uuid4().hex
        await batch.mapped.options(store=sqlite, execution_id=execution_id)(30)
        records = await sqlite.load(execution_id)
        assert not [k for k in records if wire.parse_key(k).kind == "item"]
        seen = await status(execution_id, store=sqlite)
        assert [(f.done, f.failed, f.total) for f in seen.fanouts] == [(30, 0, 30)]

    async def test_keep_checkpoints_keeps_everything(self):
        store = MemoryStore()
        execution_id = uuid.uuid4().hex
        await compaction.kept.options(store=store, execution_id=execution_id)(10)
        kinds = {wire.parse_key(key).kind for key in await store.load(execution_id)}
        assert {"header", "delta", "location"} <= kinds

    async def test_the_store_holds_little_more_than_the_result(self, tmp_path):
        store = SQLiteStore(tmp_path / "s.db")
        try:
            execution_id = uuid.uuid4().hex
            await compaction.appending.options(store=store, execution_id=execution_id)(2000)
            record = await store.get(execution_id)
            assert record is not None and record.result is not None
            kept = sum(len(k) + len(v) for k, v in (await store.load(execution_id)).items())
            assert kept < 200 and len(record.result) > 2000 * 200
        finally:
            await store.close()
