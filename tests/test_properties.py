"""Property: any loop program, crashed at any sequence of checkpoints and
resumed each time, returns what a plain uninterrupted run returns, and never
re-runs an iteration more often than the crashes allow.

The programs (tests/jobs/programs.py) change their state in every way a loop
body can: rebinding, inner containers, methods of plain objects, aliases made
before the loop, locals passed to functions, comprehensions and closures
reusing carried names, a resource that cannot be pickled. The carry audit is
on, so a checkpoint that leaves out a changed local fails even where no crash
happens to expose it. `TestThePropertyHasTeeth` breaks one rule of the carry
analysis at a time and checks that the property then finds a counterexample.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample
from jobs import programs

import resumable
from resumable import MemoryStore, _config
from resumable.testing import run_to_completion_with_crashes

OP = st.tuples(st.sampled_from(programs.OPS), st.integers(min_value=0, max_value=100))
# Hypothesis draws lists of 4 items on average, too few to combine many ops;
# the second branch makes long programs common, and shrinking still ends in
# the first.
OPS = st.one_of(st.lists(OP, max_size=40), st.lists(OP, min_size=12, max_size=40))
EVERY = st.integers(min_value=1, max_value=4)
# Several crash sequences per program: the uninterrupted baselines run once.
CRASHES = st.lists(
    st.lists(st.integers(min_value=0, max_value=24), max_size=4), min_size=1, max_size=3
)
CASES = st.tuples(OPS, EVERY, CRASHES)

# The rules the carry analysis exposes for breaking (resumable.runtime.carry.BROKEN_RULE).
RULES = ["partial-mutation", "method-call", "call-argument", "pre-loop-alias", "closure-call"]


def differences(got: dict[str, object], expected: dict[str, object]) -> str:
    return ", ".join(
        f"{key}: {got.get(key)!r} != {value!r}"
        for key, value in expected.items()
        if got.get(key) != value
    )


async def check_program(ops, every: int, crash_sequences: list[list[int]]) -> None:
    """Run the program as a plain loop, as an execution without crashes, and
    as one crashed at each sequence of checkpoint counts and resumed; every
    result must be the plain one."""
    expected = await programs.program.__wrapped__(ops, every)  # no execution: a plain loop
    clean = await run_to_completion_with_crashes(programs.program, ops, every, store=MemoryStore())
    assert clean.result == expected, (
        f"checkpointing alone changed {differences(clean.result, expected)}"
    )
    for points in crash_sequences:
        run = await run_to_completion_with_crashes(
            programs.program, ops, every, crash_points=points, store=MemoryStore()
        )
        assert run.result == expected, (
            f"after crashes at {list(run.crashes)}: {differences(run.result, expected)}"
        )
        # Each crash may re-run at most the unflushed batch (every) iterations.
        redone = run.iterations.total() - clean.iterations.total()
        assert redone <= len(run.crashes) * every, f"{redone} iterations redone"


def check(ops, every: int, crash_sequences: list[list[int]]) -> None:
    asyncio.run(check_program(ops, every, crash_sequences))


def carry_audit_exists() -> bool:
    return hasattr(resumable, "CarryAuditError") and (
        "audit_carry" in inspect.signature(resumable.configure).parameters
    )


@pytest.fixture(name="carry_audit")
def _carry_audit(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    """Sets the carry audit for one test, failing (not skipping) while it does
    not exist; afterwards the audit is as it was."""
    # There is no public getter: the configured value if it is a bool, else
    # the environment's, is what to put back.
    before = getattr(_config._config, "audit_carry", None)

    def set_audit(on: bool) -> None:
        if not carry_audit_exists():
            pytest.fail(
                "the carry audit has not landed: resumable.CarryAuditError and "
                "resumable.configure(audit_carry=...) (README, 'What gets carried') are "
                "missing, and "
                "this test needs it set",
                pytrace=False,
            )
        if on:
            monkeypatch.setenv("RESUMABLE_AUDIT_CARRY", "1")
        else:
            monkeypatch.delenv("RESUMABLE_AUDIT_CARRY", raising=False)
        resumable.configure(audit_carry=on)

    yield set_audit
    monkeypatch.undo()
    if carry_audit_exists():
        if not isinstance(before, bool):
            before = bool(os.environ.get("RESUMABLE_AUDIT_CARRY"))
        resumable.configure(audit_carry=before)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=CASES)
def any_program_any_crashes(case) -> None:
    check(*case)


class TestAnyProgramAnyCrashes:
    """Random loop programs x random crash sequences equal the uninterrupted run."""

    def test_resumed_result_equals_uninterrupted(self, carry_audit):
        carry_audit(True)
        any_program_any_crashes()


def forget_analyses() -> None:
    """Drop every cached bytecode analysis, so that the next loop is analysed
    under the rule in force now."""
    for module in [m for name, m in sys.modules.items() if name.startswith("resumable.runtime.")]:
        for name, value in vars(module).items():
            if name.endswith("_cache") and isinstance(value, dict):
                value.clear()
            elif callable(getattr(value, "cache_clear", None)):  # functools.cache
                value.cache_clear()


@contextmanager
def broken(rule: str) -> Iterator[None]:
    """The carry analysis with `rule` broken on purpose, then restored."""
    carry = importlib.import_module("resumable.runtime.carry")
    if not hasattr(carry, "BROKEN_RULE"):
        raise AttributeError("resumable.runtime.carry has no BROKEN_RULE test hook")
    previous = carry.BROKEN_RULE
    forget_analyses()
    carry.BROKEN_RULE = rule
    try:
        yield
    finally:
        carry.BROKEN_RULE = previous
        forget_analyses()


def fails(case) -> bool:
    try:
        check(*case)
    except AssertionError:
        return True
    return False


class TestThePropertyHasTeeth:
    """Each carry rule, broken, fails the property on a program the real analysis gets right."""

    @pytest.mark.parametrize("rule", RULES)
    def test_broken_rule_is_caught(self, carry_audit, rule):
        carry_audit(False)
        with broken(rule):
            try:
                example = find(
                    CASES,
                    fails,
                    settings=settings(
                        max_examples=300,
                        derandomize=True,
                        database=None,
                        deadline=None,
                        phases=[Phase.generate, Phase.shrink],  # explain costs as much again
                    ),
                )
            except NoSuchExample:
                pytest.fail(
                    f"with the carry rule {rule!r} broken, the property test passed 300 "
                    "programs: it cannot tell that rule from a broken one",
                    pytrace=False,
                )
        check(*example)  # the unbroken analysis gets the counterexample right
