"""The corpus harness itself (tests/support/corpus_runs.py, tests/corpus):
how it reads a log, what it calls a clean refusal, where it kills, and that
every declared program is well formed. In process and fast: the real runs
are tests/test_corpus.py."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from corpus import MODULES, programs
from support.corpus_runs import Trace, kill_point, unclean_stderr

# The error classes the brief allows a refusal to use (README, "The API": errors).
REFUSALS = {"CheckpointError", "LoopShapeError", "NonDeterminismError"}


class TestTrace:
    """Tags and `write N` markers, in order."""

    def test_tags_and_markers(self, tmp_path: Path):
        log = tmp_path / "effects.log"
        log.write_text("a:0\nwrite 1\na:1\nwrite 2\na:2\na:2\n", encoding="utf-8")
        trace = Trace.read(log)
        assert trace.entries == ("a:0", 1, "a:1", 2, "a:2", "a:2")
        assert trace.writes == 2
        assert trace.tags == {"a:0": 1, "a:1": 1, "a:2": 2}

    def test_before_write(self, tmp_path: Path):
        log = tmp_path / "effects.log"
        log.write_text("a:0\nwrite 1\na:1\na:2\nwrite 2\na:3\n", encoding="utf-8")
        trace = Trace.read(log)
        assert trace.before_write(0) == []  # nothing is checkpointed before write 1
        assert trace.before_write(-2) == []  # in-flight allowance past the start
        assert trace.before_write(1) == ["a:0"]
        assert trace.before_write(2) == ["a:0", "a:1", "a:2"]
        assert trace.before_write(3) == ["a:0", "a:1", "a:2", "a:3"]  # killed before 3

    def test_a_missing_log_is_empty(self, tmp_path: Path):
        assert Trace.read(tmp_path / "nothing.log").entries == ()


class TestKillPoint:
    """The five kill points of a run with W writes."""

    @pytest.mark.parametrize("writes", [1, 2, 3, 12])
    def test_points_are_writes_of_the_run(self, writes: int):
        points = {p: kill_point(p, writes, "seed") for p in ("first", "second", "middle", "last")}
        assert points["first"] == 1 and points["last"] == writes
        assert all(1 <= n <= writes for n in points.values())
        assert 1 <= kill_point("random", writes, "seed") <= writes

    def test_random_is_reproducible(self):
        assert kill_point("random", 50, "a") == kill_point("random", 50, "a")


class TestCleanStderr:
    """A refusal is one traceback ending in the error, nothing chained."""

    CLEAN = (
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "resumable.errors.CheckpointError: cannot checkpoint 'digest'\n"
        "  the rest of a multi-line message\n"
    )

    def test_clean(self):
        assert unclean_stderr(self.CLEAN, "resumable.errors.CheckpointError") == []

    def test_chained(self):
        chained = (
            "Traceback (most recent call last):\n"
            "TypeError: cannot pickle\n\n"
            "The above exception was the direct cause of the following exception:\n\n" + self.CLEAN
        )
        problems = unclean_stderr(chained, "resumable.errors.CheckpointError")
        assert "2 tracebacks instead of 1" in problems
        assert any("direct cause" in p for p in problems)

    def test_wrong_error_and_noise(self):
        noisy = self.CLEAN + "Task was destroyed but it is pending!\n"
        assert unclean_stderr(noisy, "resumable.errors.CheckpointError")
        assert unclean_stderr(self.CLEAN, "resumable.errors.LoopShapeError")


class TestCorpusDeclarations:
    """At least 50 programs, each callable by its reference, each expectation
    well formed."""

    def test_size(self):
        assert len(programs()) >= 50

    def test_every_reference_resolves_to_something_with_options(self):
        for program in programs().values():
            module_name, _, path = program.reference.partition(":")
            assert module_name in MODULES, program.reference
            target: object = importlib.import_module(module_name)
            for attribute in path.split("."):
                target = getattr(target, attribute)
            # A @resumable function, or one bound to a module-level instance
            # (whatever binding returns, it is called with `.options(...)`).
            assert callable(getattr(target, "options", None)), program.reference

    def test_refusals_name_an_error_and_what_to_look_for(self):
        for program in programs().values():
            expect = program.expect
            if expect.outcome == "refused":
                assert expect.error in REFUSALS, program.name
                assert expect.variable or expect.mentions, program.name
                assert expect.why, f"{program.name}: say why it must be refused"
                assert not program.redis
            else:
                assert expect.error is None and expect.variable is None, program.name
