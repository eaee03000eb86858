"""The rules of carry=AUTO, one test each: what is carried, what is left to
the code before the loop, and what is refused, with the message that says so.

The realistic programs (tests/corpus, killed with SIGKILL) and the property
test (tests/test_properties.py) cover the combinations; here each rule is
pinned on its own, with crashes simulated in process.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator

import pytest
from jobs import rules

from resumable import (
    CarryAuditError,
    CheckpointError,
    LoopShapeError,
    MemoryStore,
    NonDeterminismError,
    UnsupportedBytecode,
    resume,
)
from resumable.runtime import analysis_cache, bytecode, carry, loopsite, opcodes
from resumable.testing import SimulatedCrash, crash_after, run_to_completion_with_crashes


async def crash_then_resume(function, store, after: int, *args):
    execution_id = uuid.uuid4().hex
    with crash_after(after), pytest.raises(SimulatedCrash) as crash:
        await function.options(execution_id=execution_id, store=store)(*args)
    await store.release(crash.value.lease)
    return execution_id


@pytest.fixture(name="fresh_analysis")
def _fresh_analysis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Analyses cached by other tests must not answer for this one (code
    objects compare equal by value, so a clone would not do), neither from
    memory nor from the analysis cache on disk: these tests change the
    analysis itself at run time, which no cache key can see."""
    monkeypatch.setattr(bytecode, "_cache", {})
    monkeypatch.setattr(loopsite, "_cache", {})
    analysis_cache.configure(False)
    yield
    analysis_cache.configure(None)


class TestWhatIsCarried:
    """Changed locals are carried; read-only inputs and temporaries are not."""

    async def test_a_read_only_list_passed_to_a_function_is_not_carried(self):
        store = MemoryStore()
        run = await run_to_completion_with_crashes(
            rules.read_only_input, 20, crash_points=[5], store=store
        )
        assert run.result == await rules.read_only_input.options(store=MemoryStore())(20)
        records = store._checkpoints[run.execution_id]
        # 10,000 ints would take ~30 KB: the checkpoint holds the index and `total`.
        assert max(len(data) for data in records.values()) < 200

    async def test_an_element_of_a_read_only_list_is_not_carried(self):
        store = MemoryStore()
        run = await run_to_completion_with_crashes(
            rules.element_of_input, 20, crash_points=[5], store=store
        )
        assert run.result == await rules.element_of_input.options(store=MemoryStore())(20)
        records = store._checkpoints[run.execution_id]
        assert max(len(data) for data in records.values()) < 200

    async def test_an_element_changed_in_place_carries_its_container(self):
        run = await run_to_completion_with_crashes(
            rules.element_grown_in_place, 8, crash_points=[4, 2], store=MemoryStore()
        )
        assert run.result == [[0, 3, 6], [1, 4, 7], [2, 5]]

    async def test_inner_lists_are_carried_whole_not_as_deltas(self):
        run = await run_to_completion_with_crashes(
            rules.inner_lists, 7, crash_points=[3, 2], store=MemoryStore()
        )
        assert run.result == [[0, 1, 2], [3, 4, 5], [6]]

    async def test_a_rebound_global_is_carried_and_put_back(self):
        store = MemoryStore()
        rules.PROCESSED = 0
        execution_id = await crash_then_resume(rules.rebinds_a_global, store, 3, 5)
        rules.PROCESSED = 0  # a fresh process: the module starts again
        assert await resume(execution_id, store=store) == 5

    async def test_a_lazy_client_and_a_captured_temporary_are_left_out(self):
        run = await run_to_completion_with_crashes(
            rules.lazy_client_and_temporary, 6, crash_points=[2], store=MemoryStore()
        )
        assert run.result == [0, 3, 6, 9, 12, 15]


class TestRefusals:
    """What AUTO can neither carry nor leave out fails before any work, saying
    where, what and what to do."""

    async def test_a_running_hash_is_refused_at_the_loop_start(self):
        with pytest.raises(CheckpointError) as caught:
            await rules.digest_of.options(store=MemoryStore())(3)
        error = caught.value
        assert error.variable == "digest"
        assert "jobs/rules.py" in error.where and "digest_of:loop0(i)" in error.where
        source, first = inspect.getsourcelines(rules.digest_of.__wrapped__)
        line = first + next(i for i, text in enumerate(source) if "digest.update(" in text)
        assert f"line {line} calls its method update()" in error.reason
        assert "state is part of the result" in error.reason
        assert "@step" in str(error)

    async def test_an_async_comprehension_is_refused(self):
        with pytest.raises(LoopShapeError, match="async comprehension"):
            await rules.comprehension.options(store=MemoryStore())([1, 2, 3])

    async def test_loops_under_a_plain_gather_are_refused_and_agather_works(self):
        with pytest.raises(LoopShapeError, match="agather"):
            await rules.plain_gather.options(store=MemoryStore())()
        run = await run_to_completion_with_crashes(
            rules.checkpointed_gather, crash_points=[3], store=MemoryStore()
        )
        assert run.result == [10, 35]

    async def test_a_set_of_str_is_refused_in_the_first_run(self):
        with pytest.raises(NonDeterminismError, match="sorted"):
            await rules.over_a_set.options(store=MemoryStore())()

    async def test_an_iterable_in_another_order_on_resume_is_caught(self):
        store = MemoryStore()
        execution_id = await crash_then_resume(rules.ordered, store, 3, [])
        saved = list(rules.ORDER)
        rules.ORDER.reverse()
        try:
            with pytest.raises(NonDeterminismError, match="same order"):
                await resume(execution_id, store=store)
        finally:
            rules.ORDER[:] = saved
        assert await resume(execution_id, store=store) == [s.upper() for s in saved]


class TestBytecodeItDoesNotModel:
    """An opcode the analysis does not model, or a CPython newer than the
    newest it was checked on, is refused: never guessed."""

    async def test_an_unknown_opcode_is_refused(self, monkeypatch, fresh_analysis):
        job = rules.inner_lists
        monkeypatch.delitem(opcodes._TRANSFERS, "STORE_FAST")  # pretend it is new
        with pytest.raises(UnsupportedBytecode) as caught:
            await job.options(store=MemoryStore())(4)
        assert caught.value.opcode == "STORE_FAST"
        assert "does not model STORE_FAST" in str(caught.value)
        assert "carry=(...)" in str(caught.value)

    async def test_an_opcode_whose_stack_effect_changed_is_refused(
        self, monkeypatch, fresh_analysis
    ):
        job = rules.inner_lists
        monkeypatch.setitem(opcodes._TRANSFERS, "STORE_FAST", opcodes._nop)
        with pytest.raises(UnsupportedBytecode, match=r"dis\.stack_effect"):
            await job.options(store=MemoryStore())(4)

    async def test_a_newer_cpython_is_refused(self, monkeypatch, fresh_analysis):
        job = rules.inner_lists
        monkeypatch.setattr(bytecode, "NEWEST_CHECKED", (3, 10))
        with pytest.raises(UnsupportedBytecode, match="newer than the newest"):
            await job.options(store=MemoryStore())(4)


class TestCarryAudit:
    """The audit names a local that changed without being carried, and a
    delta that no longer rebuilds its list."""

    async def test_an_uncarried_change_fails_the_checkpoint(self):
        with pytest.raises(CarryAuditError) as caught:
            await run_to_completion_with_crashes(
                rules.explicit_but_incomplete, 4, store=MemoryStore()
            )
        assert caught.value.variable == "forgotten"
        assert "explicit_but_incomplete:loop0(i)" in caught.value.where

    async def test_a_stale_delta_fails_the_checkpoint(self, monkeypatch, fresh_analysis):
        # Break the rule that makes `batches[-1].append` a change of what
        # `batches` holds: it is then written as a delta of new batches only.
        job = rules.inner_lists
        monkeypatch.setattr(carry, "BROKEN_RULE", "partial-mutation")
        with pytest.raises(CarryAuditError, match="delta records rebuild") as caught:
            await run_to_completion_with_crashes(job, 7, store=MemoryStore())
        assert caught.value.variable == "batches"
