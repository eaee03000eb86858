"""carry=AUTO and friends: crash at every checkpoint, resume, compare.

Each job is run once uninterrupted, then once per possible crash point
(`crash_after(c)` kills the run before checkpoint write c+1, as SIGKILL
would) and resumed. The result must equal the uninterrupted one, and only
the iterations in flight at the crash may run again.
"""

from __future__ import annotations

from collections import Counter

import pytest
from jobs import carry

from resumable.stores.base import Store
from resumable.testing import crash_after, run_to_completion_with_crashes

N = 6


async def run_with_crashes(job, n: int, store: Store, crash_points: list[int]):
    """Start `job`, crash it at each point in turn, resume until it ends."""
    run = await run_to_completion_with_crashes(job, n, crash_points=crash_points, store=store)
    return run.result


async def baseline(job, store: Store) -> tuple[object, Counter[str], int]:
    carry.EFFECTS.clear()
    with crash_after(10**9) as plan:
        result = await job.options(store=store)(N)
    return result, Counter(carry.EFFECTS), plan.seen


def redo_allowance(job) -> int:
    """Iterations that may legitimately run again after one crash."""
    return 3 if job is carry.batched else 1


@pytest.mark.parametrize("job", carry.JOBS, ids=lambda j: j.target.name)
class TestCrashAtEveryCheckpoint:
    """Every job gives the uninterrupted result whatever checkpoint it dies at."""

    async def test_single_crash(self, job, store):
        expected, effects, writes = await baseline(job, store)
        assert writes >= N // redo_allowance(job), "every iteration (or batch) writes a checkpoint"
        for point in range(writes):
            carry.EFFECTS.clear()
            result = await run_with_crashes(job, N, store, [point])
            if job in (carry.explicit_carry, carry.carry_nothing):
                continue  # uncarried locals restart by design: see TestExplicitCarry
            assert result == expected, f"crash before write {point + 1}"
            assert set(carry.EFFECTS) == set(effects)
            redone = carry.EFFECTS.total() - effects.total()
            assert 0 <= redone <= redo_allowance(job), f"crash before write {point + 1}"
            assert max(carry.EFFECTS.values()) <= 2

    async def test_repeated_crashes(self, job, store):
        expected, effects, writes = await baseline(job, store)
        points = [writes // 3, 1, 0, 2]  # crash again right after each resume
        carry.EFFECTS.clear()
        result = await run_with_crashes(job, N, store, points)
        if job not in (carry.explicit_carry, carry.carry_nothing):
            assert result == expected
        assert set(carry.EFFECTS) == set(effects)
        assert carry.EFFECTS.total() - effects.total() <= len(points) * redo_allowance(job)


class TestNoIterationRunsTwice:
    """Iterations whose checkpoint was written never run again."""

    async def test_finished_iterations_are_skipped(self, store):
        carry.EFFECTS.clear()
        run = await run_to_completion_with_crashes(carry.numbers, 10, crash_points=[4], store=store)
        assert run.result == (45, 0.5 * 1.5**10, "0123456789")
        # writes 1..4 checkpointed iterations 0..3; iteration 4 was in flight
        runs = [1, 1, 1, 1, 2, 1, 1, 1, 1, 1]
        assert [carry.EFFECTS[f"numbers:{i}"] for i in range(10)] == runs
        assert [run.iterations["#0", i] for i in range(10)] == runs  # the started events agree

    async def test_completed_loop_is_not_iterated_again(self, store):
        """The second loop crashes: the first one is restored whole, unrun."""
        carry.EFFECTS.clear()
        expected, _, _ = await baseline(carry.two_loops, store)
        carry.EFFECTS.clear()
        # two_loops(6): writes 1-6 are loop a's iterations, 7 its end, 8+ loop b
        run = await run_to_completion_with_crashes(
            carry.two_loops, N, crash_points=[9], store=store
        )
        assert run.result == expected and run.crashes == (9,)
        assert all(carry.EFFECTS[f"two-a:{i}"] == 1 for i in range(N))
        assert {i: run.iterations["#0", i] for i in range(N)} == dict.fromkeys(range(N), 1)


class TestExplicitCarry:
    """carry=(...) carries exactly the named locals; carry=() carries none."""

    async def test_only_named_locals_are_restored(self, store):
        carry.EFFECTS.clear()
        result = await run_with_crashes(carry.explicit_carry, 10, store, [4])
        # `carried` is restored (0+..+9); `not_carried` restarts from 0 at
        # the resume and counts the iterations run after it: 4..9
        assert result == (45, 6)

    async def test_carry_nothing_still_skips_finished_iterations(self, store):
        carry.EFFECTS.clear()
        assert await run_with_crashes(carry.carry_nothing, 10, store, [4]) == 10
        assert carry.EFFECTS["nothing:0"] == 1
        assert carry.EFFECTS["nothing:4"] == 2
