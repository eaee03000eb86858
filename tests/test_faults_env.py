"""The environment's fault hook (runtime/faults.py): a real SIGKILL right
before checkpoint write N, and a count of the writes of a run.

Each test starts a real process (`support.run_program` running a corpus
program) with the variables set, because they are read once, at import.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import corpus_runs
from support.corpus_runs import Trace
from support.crashing import loop_done

from resumable.runtime import faults

PROGRAM = "corpus.flow:walrus_filter"  # 6 iterations: 7 writes


def run(tmp_path: Path, **options: object) -> corpus_runs.Run:
    return corpus_runs.start(
        PROGRAM,
        f"sqlite:///{tmp_path / 'state.db'}",
        "faults",
        tmp_path / "effects.log",
        hash_seed=0,
        **options,  # type: ignore[arg-type]
    )


class TestCountWrites:
    """RESUMABLE_FAULT_COUNT_WRITES appends `write N` before each write."""

    def test_counts_every_write_in_order_between_the_effects(self, tmp_path: Path):
        done = run(tmp_path)
        assert done.returncode == 0, done.explain()
        trace = Trace.read(tmp_path / "effects.log")
        assert trace.writes == 7  # one per iteration, and the loop's closing one
        assert [e for e in trace.entries if isinstance(e, int)] == list(range(1, 8))
        # The body of iteration i is logged before the write that checkpoints it.
        assert len(trace.before_write(1)) == 1
        assert len(trace.before_write(6)) == 6
        assert len(trace.before_write(7)) == 6

    def test_no_count_without_the_variable(self, tmp_path: Path):
        done = run(tmp_path, count_writes=False)
        assert done.returncode == 0, done.explain()
        assert Trace.read(tmp_path / "effects.log").writes == 0


class TestSigkillBeforeWrite:
    """RESUMABLE_FAULT_SIGKILL_BEFORE_WRITE=N: dies by SIGKILL before write N."""

    @pytest.mark.parametrize("n", [1, 2, 4, 7])
    def test_dies_before_write_n(self, tmp_path: Path, n: int):
        killed = run(tmp_path, kill_before_write=n)
        assert killed.returncode == -9, killed.explain()
        assert killed.outcome is None  # no exception, no clean-up: a kill
        trace = Trace.read(tmp_path / "effects.log")
        assert trace.writes == n - 1  # writes 1..N-1 happened, N did not
        # What the store holds agrees: write k checkpointed iteration k-1.
        done = loop_done(f"sqlite:///{tmp_path / 'state.db'}", "faults")
        assert done == min(n - 1, 6)

    def test_a_point_past_the_last_write_never_fires(self, tmp_path: Path):
        done = run(tmp_path, kill_before_write=8)
        assert done.returncode == 0, done.explain()

    @pytest.mark.parametrize("value", ["0", "-3", "two", "1.5"])
    def test_a_bad_value_is_refused_at_import(self, value: str):
        env = corpus_runs.environment(0, **{faults.SIGKILL_BEFORE_WRITE: value})
        imported = subprocess.run(
            [sys.executable, "-c", "import resumable"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert imported.returncode == 1
        assert faults.SIGKILL_BEFORE_WRITE in imported.stderr
        assert repr(value) in imported.stderr


class TestNoVariables:
    """Without fault variables, the per-write hook is the bare simulated-crash
    check it always was (this test process has none set)."""

    def test_before_write_is_the_plain_check(self):
        assert faults.process_faults is None
        assert faults.before_write is faults._simulated_crash

    def test_parsing(self):
        assert faults._kill_point({}) is None
        assert faults._kill_point({faults.SIGKILL_BEFORE_WRITE: " 12 "}) == 12
        assert faults._kill_point({faults.SIGKILL_BEFORE_WRITE: ""}) is None
