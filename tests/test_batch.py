"""amap, agather, @step and the journaled helpers, in process.

Crashes here are simulated with crash_after (the store is left as SIGKILL
would leave it); tests/test_crash_batch.py does the same with real processes.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from jobs import batch

import resumable
from resumable import (
    ExecutionCancelled,
    NonDeterminismError,
    Retry,
    agather,
    amap,
    cancel,
    resume,
    status,
    step,
)
from resumable.testing import SimulatedCrash, crash_after, run_to_completion_with_crashes


async def crash_then_resume(function, store, after: int, *args):
    run = await run_to_completion_with_crashes(function, *args, crash_points=[after], store=store)
    assert run.crashes == (after,), "the run ended before the crash point"
    return run.execution_id, run.result


@pytest.fixture(autouse=True)
def _clean():
    batch.CALLS.clear()
    batch.FLAGS.clear()


class TestAmap:
    """Results in input order, only unfinished items rerun after a crash."""

    async def test_result_and_resume(self, store):
        expected = [i * i for i in range(40)]
        assert await batch.mapped.options(store=store)(40) == expected
        batch.CALLS.clear()
        run = await run_to_completion_with_crashes(batch.mapped, 40, crash_points=[3], store=store)
        assert run.result == expected
        assert set(batch.CALLS) == {f"item:{i}" for i in range(40)}
        assert max(batch.CALLS.values()) <= 2 and max(run.items.values()) <= 2
        # Items recorded before the crash did not run again: at most the 8
        # in flight (concurrency) plus those waiting in the unflushed group.
        assert batch.CALLS.total() - 40 <= 16
        assert run.items.total() - 40 <= 16

    async def test_loops_inside_items_are_keyed_by_item(self, store):
        """Interleaved items each resume their own inner loop, never another's."""
        expected = [sum(i * 10 + j for j in range(5)) for i in range(6)]
        for after in (3, 9, 17):
            batch.CALLS.clear()
            _, result = await crash_then_resume(batch.loops_in_items, store, after, 6)
            assert result == expected
            assert set(batch.CALLS) == {f"inner:{i}:{j}" for i in range(6) for j in range(5)}
            # Each interrupted inner loop re-runs at most its in-flight iteration.
            assert batch.CALLS.total() - 30 <= 6

    async def test_streams_in_order_or_as_completed(self):
        delays = {0: 0.05, 1: 0.03, 2: 0.01}

        async def slow(i: int) -> int:
            await asyncio.sleep(delays[i])
            return i

        assert [r async for r in amap(slow, range(3))] == [0, 1, 2]
        assert [r async for r in amap(slow, range(3), ordered=False)] == [2, 1, 0]

    async def test_backpressure_bounds_the_source(self):
        """A slow first item must not let the source run ahead unboundedly."""
        produced = completed = 0
        worst = 0

        async def source():
            nonlocal produced, worst
            for i in range(3000):
                produced += 1
                worst = max(worst, produced - completed)
                yield i

        async def work(i: int) -> int:
            nonlocal completed
            await asyncio.sleep(0.2 if i == 0 else 0)
            completed += 1
            return i

        count = 0
        async for _ in amap(work, source(), concurrency=16):
            count += 1
        assert count == 3000
        assert worst <= 16 * 4 + 1  # the ordered window, not the input size

    async def test_concurrency_limit(self):
        active = peak = 0

        async def work(i: int) -> int:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.001)
            active -= 1
            return i

        assert await amap(work, range(100), concurrency=7) == list(range(100))
        assert peak == 7

    async def test_failure_cancels_the_others_and_keeps_finished_items(self, store):
        cancelled = 0

        async def work(i: int) -> int:
            nonlocal cancelled
            if i == 5:
                await asyncio.sleep(0.02)
                raise ValueError("item 5 broke")
            try:
                await asyncio.sleep(0 if i < 5 else 10)
            except asyncio.CancelledError:
                cancelled += 1
                raise
            return i

        @resumable.resumable
        async def job() -> list[int]:
            return await amap(work, range(10), concurrency=10)

        with pytest.raises(ValueError, match="item 5 broke"):
            await job.options(store=store)()
        assert cancelled == 4  # items 6..9 were cancelled, not awaited for 10 s
        found = (await resumable.list_executions(store=store))[0]
        checkpoints = await store.load(found.id)
        assert {k for k in checkpoints if "=" in k} == {f"#0={i}" for i in range(5)}

    async def test_return_exceptions_records_the_failure(self, store):
        runs = []

        async def work(i: int) -> int:
            runs.append(i)
            if i == 2:
                raise KeyError(i)
            return i

        assert (await amap(work, range(4), return_exceptions=True))[2].args == (2,)
        results = await amap(work, range(4), return_exceptions=True)
        assert [type(r).__name__ for r in results] == ["int", "int", "KeyError", "int"]

    async def test_retries_and_timeout(self, store):
        assert await batch.retried.options(store=store)(3, 3) == [0, 1, 2]
        assert batch.CALLS["flaky:0"] == 3
        batch.CALLS.clear()
        with pytest.raises(ConnectionError):
            await batch.retried.options(store=store)(1, 2)

        async def hang(i: int) -> int:
            await asyncio.sleep(10 if i == 1 else 0)
            return i

        with pytest.raises(TimeoutError):
            await amap(hang, range(3), timeout=0.05)
        results = await amap(hang, range(3), timeout=0.05, return_exceptions=True)
        assert isinstance(results[1], TimeoutError) and results[::2] == [0, 2]

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="concurrency"):
            amap(batch._square, [1], concurrency=0)
        with pytest.raises(TypeError, match="retries"):
            amap(batch._square, [1], retries="3")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            amap(batch._square, [1], timeout=0)
        with pytest.raises(ValueError, match="attempts"):
            Retry(attempts=0)


class TestAgather:
    """Positions are checkpointed; recorded coroutines are closed unrun."""

    async def test_resume_runs_only_missing_positions(self, store):
        expected = [f"r{i}" for i in range(12)]
        assert await batch.gathered.options(store=store)(12) == expected
        batch.CALLS.clear()
        # Items sleep 1-4 x delay, so that they finish in four groups, four
        # group commits. With 1 ms steps, a busy machine (xdist, a cold first
        # run) could start them late enough that all 12 finished in one
        # event-loop turn, one write, and the crash point was never reached.
        _, result = await crash_then_resume(batch.gathered, store, 1, 12, None, 0.05)
        assert result == expected
        assert batch.CALLS.total() < 24  # the first group's positions were not rerun

    async def test_refuses_tasks_and_futures(self):
        async def work() -> int:
            return 1

        task = asyncio.ensure_future(work())
        pending = work()
        with pytest.raises(TypeError, match="argument 1 is a Task"):
            await agather(pending, task)
        await task
        assert pending.cr_frame is None  # closed, so no "never awaited" warning

    async def test_callables_and_concurrency(self):
        async def work(i: int) -> int:
            return i

        assert await agather(lambda: work(1), work(2), concurrency=1) == [1, 2]


class TestSteps:
    """Step outcomes are journaled and replayed without calling."""

    async def test_steps_before_and_between_loops_do_not_rerun(self, store):
        expected = await batch.pipeline.options(store=store)(6)
        for after in (1, 4, 8, 9, 11):
            batch.CALLS.clear()
            run = await run_to_completion_with_crashes(
                batch.pipeline, 6, crash_points=[after], store=store
            )
            assert run.result == expected
            assert batch.CALLS["step:config"] == run.steps["fetch_config"] == 1, after
            publish = run.steps["publish"]
            assert batch.CALLS["step:publish:45"] == publish <= (2 if after == 8 else 1), after

    async def test_memoized_step_calls_once_per_key_per_execution(self, store):
        first = await batch.priced.options(store=store)(200)
        assert first[:4] == [0.0, 1.1, 2.0, 3.3]
        assert dict(batch.CALLS) == {"rate:eu": 1, "rate:us": 1}
        await batch.priced.options(store=store)(200)
        assert dict(batch.CALLS) == {"rate:eu": 2, "rate:us": 2}  # its own calls

    async def test_memoized_outcome_survives_a_crash(self, store, monkeypatch):
        # The crash comes at the first write after both memos are stored. Not
        # at a fixed count: the two rates sleep 10 ms side by side and their
        # memos usually share the first write, but a process descheduled
        # between the two sleeps (a loaded machine) writes them in two.
        execution_id = uuid.uuid4().hex
        write, memos = store.write, set()
        with crash_after(1_000_000) as plan:

            async def write_then_maybe_crash(lease, puts, deletes=()):
                await write(lease, puts, deletes)
                memos.update(key for key in puts if key.startswith("memo:"))
                if len(memos) == 2:
                    plan.after = min(plan.after, plan.seen)  # the next write dies

            monkeypatch.setattr(store, "write", write_then_maybe_crash)
            with pytest.raises(SimulatedCrash) as crash:
                await batch.priced.options(execution_id=execution_id, store=store)(200)
        assert memos == {"memo:exchange_rate:eu", "memo:exchange_rate:us"}
        assert crash.value.lease is not None
        await store.release(crash.value.lease)
        assert len(await resume(execution_id, store=store)) == 200
        assert dict(batch.CALLS) == {"rate:eu": 1, "rate:us": 1}

    async def test_memoize_per_call_site(self):
        calls = 0

        @step
        async def lookup(x: int) -> int:
            nonlocal calls
            calls += 1
            return x

        @resumable.resumable(store="memory://")
        async def job() -> list[int]:
            cached = lookup.options(memoize=True)
            return [await cached(1), await cached(1), await lookup(1)]

        assert await job() == [1, 1, 1]
        assert calls == 2

    async def test_recorded_exception_is_replayed(self, store):
        calls = 0

        @step
        async def boom() -> None:
            nonlocal calls
            calls += 1
            raise LookupError("recorded")

        @resumable.resumable
        async def job() -> str:
            try:
                await boom()
            except LookupError as exc:
                caught = str(exc)
            async for _ in resumable.aiter_checkpointed(range(3)):
                pass
            return caught

        _, result = await crash_then_resume(job, store, 2)
        assert result == "recorded"
        assert calls == 1

    async def test_divergent_replay_raises(self, store):
        batch.FLAGS["first"] = "a"
        execution_id = uuid.uuid4().hex
        with crash_after(2), pytest.raises(SimulatedCrash) as crash:
            await batch.divergent.options(execution_id=execution_id, store=store)()
        await store.release(crash.value.lease)
        batch.FLAGS["first"] = "b"
        with pytest.raises(NonDeterminismError) as caught:
            await resume(execution_id, store=store)
        message = str(caught.value)
        assert "step branch_a (" in message and "step branch_b (" in message
        assert "batch.py:" in message and "HINT" in message


class TestJournaledValues:
    """now(), uuid4(), random() and sleep() replay their recorded values."""

    async def test_values_are_replayed(self, store):
        execution_id, resumed = await crash_then_resume(batch.journaled, store, 2)
        first = await status(execution_id, store=store)
        assert first.status == "completed"
        again = await resume(execution_id, store=store)
        assert again == resumed
        assert isinstance(resumed["now"], float) and len(resumed["uuid"]) == 36

    async def test_values_survive_a_crash(self, store):
        execution_id = uuid.uuid4().hex
        with crash_after(3), pytest.raises(SimulatedCrash) as crash:
            await batch.journaled.options(execution_id=execution_id, store=store)()
        await store.release(crash.value.lease)
        checkpoints = await store.load(execution_id)
        assert len(checkpoints) >= 4  # now, uuid4, random went out with the sleep record
        first = await resume(execution_id, store=store)
        replay = await batch.journaled.options(execution_id=execution_id, store=store)()
        assert first == replay

    async def test_durable_sleep_sleeps_only_the_rest(self, store):
        batch.FLAGS["sleep"] = 2.0
        execution_id = uuid.uuid4().hex
        run = await batch.journaled.options(execution_id=execution_id, store=store).start()
        await asyncio.sleep(1.5)
        await run.cancel()
        loop = asyncio.get_running_loop()
        began = loop.time()
        await resume(execution_id, store=store)
        # ~0.5 s left of 2 s; sleeping it all again would take 2 s. The
        # margins are wide: a loaded machine must not decide this test.
        assert loop.time() - began < 1.5

    async def test_current_gives_stable_idempotency_keys(self, store):
        seen: list[str] = []

        @step
        async def charge(i: int) -> str:
            seen.append(resumable.current().idempotency_key())
            return seen[-1]

        @resumable.resumable
        async def job() -> list[str]:
            assert resumable.current().resumed in (True, False)
            return await amap(charge, range(3))

        keys = await job.options(store=store)()
        assert len(set(keys)) == 3
        assert all(k.startswith(keys[0].split(":")[0]) for k in keys)
        with pytest.raises(RuntimeError, match="outside an execution"):
            resumable.current()


class TestCancel:
    """cancel() stops the run at its next await; resume continues it."""

    async def test_cancel_in_flight_items_and_resume(self, store):
        started: list[int] = []
        gate = asyncio.Event()

        async def work(i: int) -> int:
            started.append(i)
            if i >= 4:
                await gate.wait()
            return i * 10

        @resumable.resumable
        async def job() -> list[int]:
            return await amap(work, range(8), concurrency=8)

        run = await job.options(store=store).start()
        await asyncio.sleep(0.05)
        await cancel(run.id, store=store)
        with pytest.raises(ExecutionCancelled):
            await run.result()
        found = await status(run.id, store=store)
        assert found.status == "cancelled"
        started.clear()
        gate.set()
        assert await resume(run.id, store=store) == [i * 10 for i in range(8)]
        assert sorted(started) == [4, 5, 6, 7]  # finished items were not rerun
