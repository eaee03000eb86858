"""Property: any loop program, crashed at any sequence of checkpoints and
resumed each time, returns what an uninterrupted run returns, and never
re-runs an iteration more often than the crashes allow."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobs import programs

from resumable import MemoryStore, resume
from resumable.testing import SimulatedCrash, crash_after

OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "append", "put", "text", "seen", "swap", "skip", "stop"]),
        st.integers(min_value=0, max_value=100),
    ),
    max_size=25,
)


async def run_with_crashes(ops, every: int, crash_points: list[int]):
    """Start the program, crash it at each point in turn, then run to the end."""
    store = MemoryStore()
    execution_id = uuid.uuid4().hex
    for attempt, point in enumerate([*crash_points, None]):
        with crash_after(10**9 if point is None else point):
            try:
                if attempt == 0:
                    function = programs.program.options(execution_id=execution_id, store=store)
                    return await function(ops, every)
                return await resume(execution_id, store=store)
            except SimulatedCrash as crash:
                assert crash.lease is not None
                await store.release(crash.lease)
    raise AssertionError("unreachable: the last attempt has no crash point")


class TestAnyProgramAnyCrashes:
    """Random loop programs x random crash points equal the uninterrupted run."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        ops=OPS,
        every=st.integers(min_value=1, max_value=4),
        crash_points=st.lists(st.integers(min_value=0, max_value=12), max_size=4),
    )
    def test_resumed_result_equals_uninterrupted(self, ops, every, crash_points):
        programs.RUNS.clear()
        expected = asyncio.run(run_with_crashes(ops, every, []))
        uninterrupted_runs = len(programs.RUNS)
        programs.RUNS.clear()
        result = asyncio.run(run_with_crashes(ops, every, crash_points))
        assert result == expected
        # Each crash may re-run at most the unflushed batch (every) iterations.
        assert len(programs.RUNS) - uninterrupted_runs <= len(crash_points) * every
