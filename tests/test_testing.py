"""`resumable.testing`: crash helpers and the `resumable_store` pytest fixture."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from jobs import batch, carry, watched

from resumable import _config
from resumable.stores import SQLiteStore
from resumable.testing import CrashRun, crash_after, run_to_completion_with_crashes


class TestRunToCompletionWithCrashes:
    """Crash at each point, resume until done, count what started."""

    async def test_one_crash(self, store):
        carry.EFFECTS.clear()
        run = await run_to_completion_with_crashes(carry.numbers, 10, crash_points=[4], store=store)
        assert isinstance(run, CrashRun)
        assert run.result == (45, 0.5 * 1.5**10, "0123456789")
        assert run.crashes == (4,) and run.attempts == 2
        # Writes 1-4 checkpointed iterations 0-3; iteration 4 was in flight.
        assert [run.iterations["#0", i] for i in range(10)] == [1, 1, 1, 1, 2, 1, 1, 1, 1, 1]
        # The counts agree with what the loop body itself recorded.
        assert [carry.EFFECTS[f"numbers:{i}"] for i in range(10)] == [
            run.iterations["#0", i] for i in range(10)
        ]

    async def test_crash_after_every_resume(self, store):
        batch.CALLS.clear()
        expected = await batch.pipeline.options(store=store)(6)
        batch.CALLS.clear()
        run = await run_to_completion_with_crashes(
            batch.pipeline, 6, crash_points=[1, 0, 3, 2], store=store
        )
        assert run.result == expected
        assert run.crashes == (1, 0, 3, 2)
        assert run.steps["fetch_config"] == 1  # recorded by write 1: never called again
        assert run.steps["publish"] == 1
        assert set(run.items) == {("#3", i) for i in range(6)} | {("#4", 0), ("#4", 1)}
        assert run.events[0].execution_id == run.execution_id

    async def test_items_recorded_before_a_crash_do_not_start_again(self, store):
        batch.CALLS.clear()
        run = await run_to_completion_with_crashes(batch.mapped, 40, crash_points=[3], store=store)
        assert run.result == [i * i for i in range(40)]
        assert len(run.items) == 40 and max(run.items.values()) <= 2
        assert sum(run.items.values()) - 40 <= 16  # in flight, or in the unflushed group

    async def test_points_past_the_end_do_not_crash(self, store):
        run = await run_to_completion_with_crashes(
            carry.numbers, 3, crash_points=[999], store=store
        )
        assert run.crashes == () and run.attempts == 1
        assert run.result == (3, 0.5 * 1.5**3, "012")

    async def test_no_points_runs_once(self, store):
        run = await run_to_completion_with_crashes(carry.numbers, 3, store=store)
        assert run.crashes == () and sum(run.iterations.values()) == 3

    async def test_the_users_exception_propagates(self, store):
        with pytest.raises(RuntimeError, match="asked to fail"):
            await run_to_completion_with_crashes(
                watched.watched, 3, 0.0, crash_points=[1], store=store, fail=True
            )

    async def test_misuse(self, store):
        with pytest.raises(ValueError, match="crash_points"):
            await run_to_completion_with_crashes(carry.numbers, 3, crash_points=[-1], store=store)
        with pytest.raises(TypeError, match="expected a @resumable function"):
            await run_to_completion_with_crashes(len, [1])  # type: ignore[arg-type]
        for bad in (-1, True, 1.5):
            with pytest.raises(ValueError, match="n must be an int >= 0"), crash_after(bad):  # type: ignore[arg-type]
                pass


class TestResumableStoreFixture:
    """The plugin's fixture: a fresh SQLite store, the default during the test."""

    async def test_is_the_default_store(self, resumable_store, tmp_path):
        assert isinstance(resumable_store, SQLiteStore)
        assert resumable_store.path.startswith(str(tmp_path))
        assert _config.resolve_store() is resumable_store
        run = await run_to_completion_with_crashes(carry.numbers, 5, crash_points=[2])
        assert run.result[0] == 10
        assert (await resumable_store.get(run.execution_id)).status == "completed"

    def test_registered_for_any_project(self, tmp_path):
        """Installed through the pytest11 entry point: a project with no
        conftest gets it, closed after its test, and the default put back."""
        (tmp_path / "test_user.py").write_text(
            textwrap.dedent("""
                import asyncio

                from resumable import _config, aiter_checkpointed, resumable

                OPENED = []

                @resumable
                async def count(n):
                    total = 0
                    async for i in aiter_checkpointed(range(n)):
                        total += i
                    return total

                def test_uses_it(resumable_store):
                    OPENED.append(resumable_store)
                    assert asyncio.run(count(4)) == 6
                    [record] = asyncio.run(resumable_store.list())
                    assert record.status == "completed"

                def test_closed_after():
                    [store] = OPENED
                    assert store._conn is None
                    assert _config._config.store is None
            """)
        )
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 passed" in done.stdout
