"""Containers written as deltas (runtime/deltas.py): every top-level change
of a dict, set, deque and list comes back exactly, with a crash at every
checkpoint, across chunk folds; and what a delta cannot express is written
whole."""

from __future__ import annotations

import uuid

import pytest
from jobs import containers

from resumable import MemoryStore, resume
from resumable.runtime import deltas, wire
from resumable.testing import SimulatedCrash, crash_after, run_to_completion_with_crashes

JOBS = [
    containers.dict_ops,
    containers.set_ops,
    containers.deque_ops,
    containers.list_edits,
    containers.long_dict,
]
N = 23


@pytest.fixture(name="small_folds")
def _small_folds(monkeypatch):
    """Fold every 4 deltas, so that short loops cross several folds."""
    monkeypatch.setattr(deltas, "FOLD", 4)


@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.__name__)
class TestCrashAtEveryCheckpoint:
    async def test_one_crash_anywhere(self, job, small_folds):
        expected = await containers.plain(job, N)
        for point in range(1, N + 1):
            run = await run_to_completion_with_crashes(
                job, N, crash_points=[point], store=MemoryStore()
            )
            assert run.result == expected, f"crash after checkpoint {point}"

    async def test_many_crashes(self, job, small_folds):
        expected = await containers.plain(job, N)
        run = await run_to_completion_with_crashes(
            job, N, crash_points=[3, 1, 5, 2, 4, 1], store=MemoryStore()
        )
        assert run.result == expected


class TestRecords:
    async def test_a_growing_dict_writes_only_its_new_entries(self, small_folds):
        store = MemoryStore()
        sizes: list[int] = []
        write = store.write

        async def counting(lease, puts, deletes=()):
            sizes.append(sum(len(v) for k, v in puts.items() if "+" in k))
            await write(lease, puts, deletes)

        store.write = counting  # type: ignore[method-assign]
        await containers.long_dict.options(store=store)(400)
        # Each checkpoint writes the changed entries, not the 400-entry dict;
        # one in 4 also folds its 4 deltas into a chunk.
        assert max(sizes[1:]) < 400
        assert sum(sizes) < 60 * 400

    async def test_folded_records_are_chunks(self, small_folds):
        store = MemoryStore()
        execution_id = uuid.uuid4().hex
        with crash_after(26), pytest.raises(SimulatedCrash) as crash:
            await containers.long_dict.options(store=store, execution_id=execution_id)(30)
        await store.release(crash.value.lease)
        kinds = sorted(wire.parse_key(key).kind for key in await store.load(execution_id))
        # 25 deltas: a base, 6 chunks of 4 and one delta since the last fold.
        assert kinds.count("chunk") == 6 and kinds.count("delta") == 2, kinds
        result = await resume(execution_id, store=store)
        assert result == await containers.plain(containers.long_dict, 30)

    def test_a_bounded_deque_is_not_a_delta(self):
        from collections import deque

        assert deltas.kind_of(deque(maxlen=3), appends_only=True) is None
        assert deltas.kind_of(deque(), appends_only=True) == deltas.DEQUE
        assert deltas.kind_of([], appends_only=False) is None
        assert deltas.kind_of({}, appends_only=False) == deltas.DICT

    def test_chunk_keys_parse(self):
        assert wire.parse_key(wire.chunk_key("#0", "table", 8)) == wire.ParsedKey(
            "chunk", "#0", name="table", seq=8
        )


class TestWhichValuesAreDeltas:
    """What the analysis lets `deltas` write as deltas (records of a run
    crashed after checkpoint 6, read from the store)."""

    async def records(self, job) -> dict[str, set[str]]:
        store = MemoryStore()
        execution_id = uuid.uuid4().hex
        with crash_after(6), pytest.raises(SimulatedCrash) as crash:
            await job.options(store=store, execution_id=execution_id)(10)
        await store.release(crash.value.lease)
        found: dict[str, set[str]] = {}
        for key in await store.load(execution_id):
            parsed = wire.parse_key(key)
            if parsed.name is not None:
                found.setdefault(parsed.name, set()).add(parsed.kind)
        return found

    async def test_an_appended_deque_and_a_growing_dict_and_set(self):
        assert set(await self.records(containers.deque_ops)) == {"recent"}  # not `bounded`
        assert set(await self.records(containers.dict_ops)) == {"table"}
        assert set(await self.records(containers.set_ops)) == {"seen"}

    async def test_a_list_edited_in_place_is_written_whole(self):
        assert await self.records(containers.list_edits) == {}
