"""The checkpoint record format (runtime/wire.py): its keys, its headers
pinned byte for byte, its version, stores written by the first release, and
compaction at completion."""

from __future__ import annotations

import shutil
import sqlite3
import sys
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from jobs import batch, compaction, format1

from resumable import FormatVersionError, MemoryStore, SQLiteStore, resume, status
from resumable.runtime import wire
from resumable.stores.codec import Codec

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

    def test_positions_sort_in_program_order(self):
        found = sorted(["#10", "#2", "#1[3]/#0", "#1"], key=wire.position_order)
        assert found == ["#1", "#1[3]/#0", "#2", "#10"]


# Every header kind, encoded by an unkeyed codec. A change to what is
# written changes these bytes: bump FORMAT_VERSION and teach the reader the
# old shape before changing them.
GOLDEN = {
    "loop": (
        wire.LoopHeader(
            site="f:loop0(i)",
            index=7,
            total=20,
            done=False,
            appends={},
            carried=b"m\x81\xa5total\x15",
            same=("seen",),
            digest=12345,
            deltas={"out": ["list", 3, 1000]},
        ).wire(),
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
    "location": (wire.location_header("j.py:2"), "6d81a177a66a2e70793a32"),
}


class TestGoldenBlobs:
    @pytest.mark.parametrize("kind", sorted(GOLDEN))
    def test_headers_are_written_byte_for_byte(self, kind):
        header, pinned = GOLDEN[kind]
        assert Codec().dumps_plain(header).hex() == pinned

    def test_the_loop_header_reads_back(self):
        header, _ = GOLDEN["loop"]
        parsed = wire.LoopHeader.parse(Codec().loads(Codec().dumps_plain(header)))
        assert (parsed.index, parsed.total, parsed.same) == (7, 20, ("seen",))
        assert parsed.described() == {"out": ["list", 3, 1000]}
        assert parsed.digest == 12345 and not parsed.linked


class TestVersion:
    async def test_new_executions_record_the_current_format(self, sqlite):
        await compaction.counting.options(store=sqlite, execution_id="v")(3)
        record = await sqlite.get("v")
        assert record is not None and record.format == wire.FORMAT_VERSION == 2

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
            assert "format 7" in str(caught.value) and "format 2" in str(caught.value)
            seen = await status(execution_id, store=store)  # still listed, progress withheld
            assert seen.status == "completed"
        finally:
            await store.close()


class TestFirstReleaseStore:
    """tests/data/format-1.db was written by the first release (commit
    31d2c57, CPython 3.11): `jobs.format1.pipeline(20)` ran its step and its
    amap, then 6 iterations of its loop, and was stopped (lease released)."""

    @pytest.fixture(name="old_store")
    async def _old_store(self, tmp_path):
        path = tmp_path / "state.db"
        shutil.copyfile(DATA / "format-1.db", path)
        store = SQLiteStore(path)
        yield store
        await store.close()

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
        # The stored fingerprint is of 3.11 bytecode: other versions keep the
        # checkpoints (the loops line up by site) instead of refusing.
        mode = "error" if sys.version_info[:2] == (3, 11) else "continue"
        result = await resume("format-1-run", store=old_store, on_code_change=mode)
        assert result == format1.expected(20)
        assert list(range(6, 20)) == format1.RAN  # the 6 finished iterations did not run again
        done = await status("format-1-run", store=old_store)
        assert done.status == "completed"


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
