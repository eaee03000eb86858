"""Guarantee §3.5: resuming changed code is caught, never silently wrong."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from resumable import CodeChangedError, NonDeterminismError, resume
from resumable.testing import SimulatedCrash, crash_after

V1 = """
from resumable import aiter_checkpointed, resumable

RUNS = []

def ran(i):  # a side effect outside the loop's state: counts real runs
    RUNS.append(i)

@resumable
async def job(n):
    total = 0
    async for i in aiter_checkpointed(range(n)):
        ran(i)
        total += i
    return total
"""

# Same loop, different body: the fingerprint differs.
V2 = V1.replace("total += i", "total += i * 2")

# Comments and blank lines moved: line numbers are not part of the fingerprint.
V1_REFORMATTED = V1.replace("RUNS = []", "# a comment\n\n\nRUNS = []")

# A different loop (other loop variable, other carried locals) where the first was.
V3 = """
from resumable import aiter_checkpointed, resumable

RUNS = []

def ran(i):
    RUNS.append(i)

@resumable
async def job(n):
    count = 0
    async for k in aiter_checkpointed(range(n)):
        ran(k)
        count += 1
    return count
"""


@pytest.fixture(name="module")
def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a module version to disk and (re)import it, as a deploy would."""
    name = f"codechange_{uuid.uuid4().hex[:8]}"
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(source: str) -> ModuleType:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        if name in sys.modules:
            return importlib.reload(sys.modules[name])
        return importlib.import_module(name)

    yield load
    sys.modules.pop(name, None)


async def crash_v1(load, store, after: int = 3) -> str:
    module = load(V1)
    execution_id = uuid.uuid4().hex
    with crash_after(after), pytest.raises(SimulatedCrash) as crash:
        await module.job.options(execution_id=execution_id, store=store)(6)
    await store.release(crash.value.lease)
    return execution_id


class TestCodeChanged:
    """A different bytecode fingerprint stops the resume unless told otherwise."""

    async def test_error_by_default(self, module, store):
        execution_id = await crash_v1(module, store)
        changed = module(V2)
        with pytest.raises(CodeChangedError) as caught:
            await resume(execution_id, store=store)
        error = caught.value
        assert error.function.endswith(":job")
        assert error.location.endswith(".py:9")  # the @resumable line
        assert "bytecode differs" in str(error) and "on_code_change" in str(error)
        assert changed.RUNS == []  # nothing ran
        # The refusal released the lease: a later resume may still decide.
        assert await resume(execution_id, store=store, on_code_change="continue") == 3 + 2 * 12

    async def test_continue_keeps_the_checkpoints(self, module, store):
        execution_id = await crash_v1(module, store)
        changed = module(V2)
        result = await resume(execution_id, store=store, on_code_change="continue")
        assert result == (0 + 1 + 2) + 2 * (3 + 4 + 5)  # v1 for 0..2, v2 from 3
        assert changed.RUNS == [3, 4, 5]

    async def test_restart_discards_the_checkpoints(self, module, store):
        execution_id = await crash_v1(module, store)
        changed = module(V2)
        assert await resume(execution_id, store=store, on_code_change="restart") == 2 * 15
        assert changed.RUNS == [0, 1, 2, 3, 4, 5]
        assert await resume(execution_id, store=store) == 30  # completed: stored result

    async def test_moving_lines_is_not_a_change(self, module, store):
        execution_id = await crash_v1(module, store)
        module(V1_REFORMATTED)
        assert await resume(execution_id, store=store) == 15

    async def test_continue_refuses_a_different_loop(self, module, store):
        execution_id = await crash_v1(module, store)
        module(V3)
        with pytest.raises(NonDeterminismError) as caught:
            await resume(execution_id, store=store, on_code_change="continue")
        message = str(caught.value)
        assert "job:loop0(i)" in message and "job:loop0(k)" in message
