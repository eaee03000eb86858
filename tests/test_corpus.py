"""The carry corpus: realistic loop programs (tests/corpus/), each killed
with a real SIGKILL right before a chosen checkpoint write and resumed in a
fresh process.

The rule (README, "Guarantees" and "What gets carried"): AUTO carry never
gives a result that differs from an uninterrupted run. For an `exact`
program, from every kill point, the
resumed result is the uninterrupted one, as JSON text, and no iteration whose
checkpoint was written before the kill runs again. A `refused` program fails
in its first run with the expected `resumable.errors` class, naming the
variable, before any checkpoint is written, with a clean traceback.

How a test knows which iterations were checkpointed: the killed process
appends a line `write N` to the program's own log before each checkpoint
write (RESUMABLE_FAULT_COUNT_WRITES), so the log reads "tags, write 1, tags,
write 2, ...". It dies right before write K (RESUMABLE_FAULT_SIGKILL_BEFORE_WRITE);
write K-1 was complete by then in a sequential program (each checkpoint is
awaited before the next iteration starts), so every tag before the marker
`write K-1` is checkpointed. Programs with concurrent writers (amap,
agather) declare how many writes may still be in flight, and the line moves
back by that many markers.

Each (program, kill point) is one test. The uninterrupted run of a program
is made once per session and store kind, by whichever xdist worker asks
first (a file lock), and gives the expected result, the number of writes W,
and the set of iteration tags.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from corpus import Program, programs
from support import corpus_runs
from support.corpus_runs import Baseline, Trace
from support.redis_server import with_prefix

import resumable.errors

PROGRAMS = programs()
EXACT = [p for p in PROGRAMS.values() if p.expect.outcome == "exact"]
REFUSED = [p for p in PROGRAMS.values() if p.expect.outcome == "refused"]

KILL_POINTS = ("first", "second", "middle", "last", "random")
REDIS_KILL_POINTS = ("second", "middle", "last")
# The random kill point of each program is drawn from this seed (the same
# points every session unless it is changed; the test's message names N).
SEED = os.environ.get("RESUMABLE_CORPUS_SEED", "corpus-1")

# Each process of a test hashes strings differently, as real processes do.
SEED_BASELINE, SEED_KILLED, SEED_RESUMED = 1001, 2002, 3003


@pytest.fixture(name="baselines", scope="session")
def _baselines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this session shares (its own
    basetemp's parent when running under xdist)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared / "corpus-baselines"


def uninterrupted(program: Program, store: str | None, baselines: Path, kind: str) -> Baseline:
    """The program's uninterrupted run (in a SQLite file of its own when
    `store` is None), checked to be usable as the reference."""
    found = corpus_runs.cached_baseline(
        program.reference, store, baselines, f"{program.name}-{kind}", hash_seed=SEED_BASELINE
    )
    assert found.result_text is not None, (
        f"{program.name} is expected to resume exactly, but its uninterrupted run "
        f"gave no result (a wrong refusal, or a failure):\n{found.failure}"
    )
    assert found.writes >= 1, f"{program.name}: the uninterrupted run wrote no checkpoint"
    repeated = sorted(tag for tag, times in found.tags.items() if times > 1)
    assert not repeated, f"{program.name}: tags are not unique per iteration: {repeated}"
    return found


def kill_and_resume(program: Program, point: str, store: str, expected: Baseline, log: Path):
    """Kill a fresh run of `program` before write N, resume it fresh, and
    check the result and the side effects."""
    n = corpus_runs.kill_point(point, expected.writes, f"{SEED}:{program.name}")
    where = f"{program.name}, killed before checkpoint write {n} of {expected.writes}"
    execution_id = uuid.uuid4().hex
    killed = corpus_runs.start(
        program.reference, store, execution_id, log, hash_seed=SEED_KILLED, kill_before_write=n
    )
    assert killed.returncode == -9, (
        f"{where}: the run did not die by SIGKILL before write {n} (its writes are "
        f"not the same as in the uninterrupted run?)\n{killed.explain()}"
    )
    before_kill = Trace.read(log)
    certain = n - 1 - program.expect.in_flight_writes  # the last write surely complete
    checkpointed = set(before_kill.before_write(certain))

    resumed = corpus_runs.resume(store, execution_id, log, hash_seed=SEED_RESUMED)
    assert resumed.result_text is not None, f"{where}: the resume failed\n{resumed.explain()}"
    # Every problem at once: a lost state often shows in the result and in
    # the iterations that ran again.
    problems = []
    if resumed.result_text != expected.result_text:
        problems.append(
            "the resumed result differs from the uninterrupted one\n"
            f"  resumed:       {resumed.result_text}\n"
            f"  uninterrupted: {expected.result_text}"
        )
    effects = Trace.read(log).tags
    missing = sorted(set(expected.tags) - set(effects))
    extra = sorted(set(effects) - set(expected.tags))
    if missing or extra:
        problems.append(f"iterations missing {missing}, unexpected {extra}")
    again = sorted(tag for tag in checkpointed if effects[tag] > 1)
    if again:
        problems.append(f"checkpointed before the kill, yet ran again: {again}")
    thrice = sorted(tag for tag, times in effects.items() if times > 2)
    if thrice:
        problems.append(f"ran more than twice after one kill: {thrice}")
    assert not problems, f"{where}:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("program", "point"),
    [pytest.param(p, point, id=f"{p.name}-{point}") for p in EXACT for point in KILL_POINTS],
)
class TestKilledAndResumed:
    """Killed by SIGKILL at a checkpoint write, resumed in a fresh process:
    the uninterrupted result, no checkpointed iteration run twice (SQLite)."""

    def test_exact_result(self, program: Program, point: str, tmp_path: Path, baselines: Path):
        store = f"sqlite:///{tmp_path / 'state.db'}"
        expected = uninterrupted(program, None, baselines, "sqlite")
        kill_and_resume(program, point, store, expected, tmp_path / "effects.log")


@pytest.mark.parametrize(
    ("program", "point"),
    [
        pytest.param(p, point, id=f"{p.name}-{point}")
        for p in EXACT
        if p.redis
        for point in REDIS_KILL_POINTS
    ],
)
class TestKilledAndResumedOnRedis:
    """The same against a real Redis-compatible server, for a handful."""

    def test_exact_result(
        self, program: Program, point: str, tmp_path: Path, baselines: Path, redis_url: str
    ):
        expected = uninterrupted(program, with_prefix(redis_url), baselines, "redis")
        kill_and_resume(program, point, with_prefix(redis_url), expected, tmp_path / "effects.log")


@pytest.mark.parametrize("program", [pytest.param(p, id=p.name) for p in REFUSED])
class TestRefusedInTheFirstRun:
    """Programs AUTO cannot resume exactly fail at once, clearly, having
    written nothing (the process is set to die at the first write)."""

    def test_refused(self, program: Program, tmp_path: Path):
        expect = program.expect
        error = getattr(resumable.errors, str(expect.error), None)
        assert isinstance(error, type) and issubclass(error, resumable.errors.ResumableError), (
            f"resumable.errors has no ResumableError subclass {expect.error} (yet)"
        )
        full_name = f"resumable.errors.{expect.error}"
        log = tmp_path / "effects.log"
        store = f"sqlite:///{tmp_path / 'state.db'}"
        run = corpus_runs.start(
            program.reference, store, "first-run", log, hash_seed=SEED_KILLED, kill_before_write=1
        )
        assert run.returncode != -9, (
            f"{program.name}: not refused before the first checkpoint write (it tried "
            f"to write one and died there)\n{run.explain()}"
        )
        assert run.returncode != 0, (
            f"{program.name}: expected {full_name}, but it completed with {run.stdout.strip()}"
        )
        assert run.outcome is not None, (
            f"{program.name}: died without an exception\n{run.explain()}"
        )
        assert full_name in run.outcome["mro"], (  # type: ignore[operator]
            f"{program.name}: expected {full_name}, got\n{run.explain()}"
        )
        message = str(run.outcome["message"])
        attributes: dict[str, str] = run.outcome["attributes"]  # type: ignore[assignment]
        if expect.variable is not None:
            assert attributes.get("variable") == expect.variable, (
                f"{program.name}: the error names variable {attributes.get('variable')!r}, "
                f"not {expect.variable!r}: {message}"
            )
            assert expect.variable in message, f"{program.name}: {message}"
        for word in expect.mentions:
            assert word in message, f"{program.name}: the message does not name {word!r}: {message}"
        trace = Trace.read(log)
        assert trace.writes == 0, f"{program.name}: {trace.writes} checkpoint writes"
        assert trace.tags.total() <= expect.work_before_refusal, (
            f"{program.name}: refused only after {trace.tags.total()} loop bodies ran: "
            f"{sorted(trace.tags)}"
        )
        printed = str(run.outcome["mro"][0])  # type: ignore[index]
        problems = corpus_runs.unclean_stderr(run.stderr, printed)
        assert not problems, (
            f"{program.name}: stderr is not one clean error: {problems}\n{run.tail(40)}"
        )
