"""The in-process event stream: `resumable.subscribe(callback)`."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter

import pytest
from jobs import batch, watched
from structlog.testing import capture_logs

from resumable import ExecutionCancelled, resume, subscribe
from resumable.runtime import events
from resumable.testing import SimulatedCrash, crash_after


@pytest.fixture(name="recorded")
def _recorded():
    """Events of this test, collected until the test ends."""
    seen: list[events.Event] = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


def names(seen: list[events.Event], execution_id: str) -> Counter[str]:
    return Counter(type(e).__name__ for e in seen if e.execution_id == execution_id)


class TestSubscribe:
    """Subscribers get typed, timed events of every execution in the process."""

    async def test_a_run_from_start_to_end(self, store, recorded):
        execution_id = uuid.uuid4().hex
        batch.CALLS.clear()
        await batch.pipeline.options(execution_id=execution_id, store=store)(3)
        mine = [e for e in recorded if e.execution_id == execution_id]
        assert isinstance(mine[0], events.ExecutionStarted)
        assert isinstance(mine[-1], events.ExecutionCompleted)
        assert mine[0].function == mine[-1].function == "pipeline"
        counted = names(recorded, execution_id)
        assert counted["StepStarted"] == counted["StepRecorded"] == 2
        assert counted["IterationStarted"] == 3
        assert counted["ItemStarted"] == 3 + 2  # the amap's and the agather's
        assert counted["CheckpointWritten"] >= 4  # loop iterations and its end
        loop_starts = [e for e in mine if isinstance(e, events.IterationStarted)]
        assert [(e.position, e.index) for e in loop_starts] == [("#1", 0), ("#1", 1), ("#1", 2)]

    async def test_events_are_frozen_and_timed(self, store, recorded):
        execution_id = uuid.uuid4().hex
        await batch.pipeline.options(execution_id=execution_id, store=store)(3)
        mine = [e for e in recorded if e.execution_id == execution_id]
        stamps = [e.at for e in mine]
        assert stamps == sorted(stamps)
        completed = mine[-1]
        assert isinstance(completed, events.ExecutionCompleted)
        assert 0 <= completed.seconds <= stamps[-1] - stamps[0] + 0.01
        for event in mine:
            if isinstance(event, events.StepRecorded | events.CheckpointWritten):
                assert event.seconds >= 0
        with pytest.raises(dataclasses.FrozenInstanceError):
            completed.seconds = 0  # type: ignore[misc]

    async def test_unsubscribe_stops_delivery(self, store):
        seen: list[events.Event] = []
        unsubscribe = subscribe(seen.append)
        await batch.mapped.options(store=store)(3)
        assert seen
        unsubscribe()
        unsubscribe()  # a second call is harmless
        count = len(seen)
        await batch.mapped.options(store=store)(3)
        assert len(seen) == count

    async def test_a_failing_subscriber_does_not_break_the_run(self, store, recorded):
        def broken(event: events.Event) -> None:
            raise ZeroDivisionError("subscriber bug")

        unsubscribe = subscribe(broken)
        try:
            with capture_logs() as logs:
                result = await batch.mapped.options(store=store)(4)
        finally:
            unsubscribe()
        assert result == [0, 1, 4, 9]
        failures = [line for line in logs if line["event"] == "event subscriber failed"]
        assert failures and all("ZeroDivisionError" in line["error"] for line in failures)
        assert failures[0]["log_level"] == "warning"
        assert any(isinstance(e, events.ExecutionCompleted) for e in recorded)  # others still fed

    def test_only_callables(self):
        with pytest.raises(TypeError, match="expected a callable"):
            subscribe("print")  # type: ignore[arg-type]


class TestLifecycle:
    """Resumed, failed, cancelled and retried runs say so."""

    async def test_resumed_run(self, store, recorded):
        execution_id = uuid.uuid4().hex
        with crash_after(4), pytest.raises(SimulatedCrash) as crash:
            await batch.pipeline.options(execution_id=execution_id, store=store)(6)
        await store.release(crash.value.lease)
        recorded.clear()
        await resume(execution_id, store=store)
        mine = [e for e in recorded if e.execution_id == execution_id]
        resumed = mine[0]
        assert isinstance(resumed, events.ExecutionResumed)
        assert resumed.attempt == 2 and resumed.checkpoints >= 2  # the step and the loop
        [loop] = [e for e in mine if isinstance(e, events.LoopResumed)]
        assert loop.position == "#1" and loop.index == 3  # write 1: the step; 2-4: iterations
        assert [e.step for e in mine if isinstance(e, events.StepReplayed)] == ["fetch_config"]
        first_started = next(e for e in mine if isinstance(e, events.IterationStarted))
        assert first_started.index == 3  # finished iterations never start again

    async def test_resumed_fanout_says_how_much_it_skips(self, store, recorded):
        execution_id = uuid.uuid4().hex
        # writes: 1 the config step, 2-7 iterations, 8 the loop's end, 9 the
        # publish step, 10 the first group of amap items; the crash is at 11
        with crash_after(10), pytest.raises(SimulatedCrash) as crash:
            await batch.pipeline.options(execution_id=execution_id, store=store)(6)
        await store.release(crash.value.lease)
        recorded.clear()
        await resume(execution_id, store=store)
        [fanout] = [e for e in recorded if isinstance(e, events.FanoutResumed)]
        assert fanout.position == "#3" and fanout.kind == "map"
        assert 1 <= fanout.recorded < 6
        started = [e for e in recorded if isinstance(e, events.ItemStarted)]
        assert len(started) == 6 - fanout.recorded + 2  # the rest, then agather's two

    async def test_failed_run_names_the_error_type_only(self, store, recorded):
        with pytest.raises(RuntimeError):
            await watched.watched.options(execution_id="f", store=store)(2, 0.0, fail=True)
        [failed] = [e for e in recorded if isinstance(e, events.ExecutionFailed)]
        assert failed.execution_id == "f" and failed.error == "RuntimeError"
        assert failed.seconds >= 0

    async def test_cancelled_run(self, store, recorded):
        run = await watched.watched.options(store=store).start(1000, 0.01)
        while not any(isinstance(e, events.IterationStarted) for e in recorded):
            await resume_soon()
        await run.cancel()
        with pytest.raises(ExecutionCancelled):
            await run.result()
        assert any(
            isinstance(e, events.ExecutionStopped) and e.execution_id == run.id for e in recorded
        )

    async def test_retried_items(self, store, recorded):
        batch.CALLS.clear()
        assert await batch.retried.options(store=store)(2, 3) == [0, 1]
        retried = [e for e in recorded if isinstance(e, events.ItemRetried)]
        assert sorted((e.index, e.attempt) for e in retried) == [(0, 1), (0, 2), (1, 1), (1, 2)]
        assert {e.error for e in retried} == {"ConnectionError"}


async def resume_soon() -> None:
    import asyncio

    await asyncio.sleep(0.005)
