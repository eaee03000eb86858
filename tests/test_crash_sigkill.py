"""Real crashes: a child process is killed with SIGKILL at many points of a
checkpointed loop, then a fresh process resumes the execution by id.

The resuming process has never imported the job's module: `resume` finds
the function from its stored reference. Side effects are counted in a log
file shared by all processes.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from jobs import pipeline
from support.crashing import count, kill_after_lines, loop_done, resume_fresh, start

DELAY = 0.004


def checkpointed(store_url: str, execution_id: str) -> set[str]:
    """Iterations of `flat` whose checkpoint is in the store (read after the kill)."""

    return {f"flat:{i}" for i in range(loop_done(store_url, execution_id))}


class TestKillAndResume:
    """SIGKILL anywhere in a loop; a fresh process resumes to the exact result."""

    # (lines logged before the kill, extra seconds): lands before, inside and
    # right after loop bodies and checkpoint writes.
    POINTS = [
        (1, 0),
        (2, 0.001),
        (5, 0.0025),
        (9, 0),
        (13, 0.003),
        (21, 0.0005),
        (34, 0.002),
        (39, 0.0039),
    ]

    @pytest.mark.parametrize(("lines", "extra"), POINTS)
    def test_flat_loop(self, tmp_path: Path, store_url: str, lines: int, extra: float):
        n = 40
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        child = start(store_url, execution_id, "flat", n, log, DELAY)
        killed = kill_after_lines(child, log, lines, extra)
        done_before_kill = checkpointed(store_url, execution_id) if killed else set()
        result = resume_fresh(store_url, execution_id)
        assert result == pipeline.expected("flat", n)
        effects = count(log)
        assert set(effects) == set(pipeline.tags("flat", n))
        for tag in done_before_kill:
            assert effects[tag] == 1, f"{tag} was checkpointed before the kill but ran again"
        rerun = [tag for tag, times in effects.items() if times > 1]
        assert len(rerun) <= 1, f"more than the in-flight iteration ran twice: {rerun}"

    @pytest.mark.parametrize("lines", [3, 11, 26, 41, 47])
    def test_nested_loops_and_helper_coroutine(self, tmp_path: Path, store_url: str, lines: int):
        n = 10  # 40 inner iterations, then 10 in a helper coroutine's loop
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        child = start(store_url, execution_id, "nested", n, log, DELAY)
        kill_after_lines(child, log, lines, DELAY / 2)
        assert resume_fresh(store_url, execution_id) == pipeline.expected("nested", n)
        effects = count(log)
        assert set(effects) == set(pipeline.tags("nested", n))
        assert sum(effects.values()) - len(effects) <= 1, effects.most_common(3)

    def test_killed_again_during_resume(self, tmp_path: Path, store_url: str):
        n = 60
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        child = start(store_url, execution_id, "flat", n, log, DELAY)
        kill_after_lines(child, log, 10, 0.001)
        for _ in range(3):  # each resume is killed in its turn
            resume_fresh(store_url, execution_id, kill_after=0.6)
        assert resume_fresh(store_url, execution_id) == pipeline.expected("flat", n)
        effects = count(log)
        assert set(effects) == set(pipeline.tags("flat", n))
        assert sum(effects.values()) - n <= 4  # at most one in-flight rerun per kill
