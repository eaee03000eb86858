"""The public surface: names, idempotency keys, handles, and clear errors for misuse."""

from __future__ import annotations

import asyncio
import importlib
import pickle
import pkgutil
import uuid

import pytest
from jobs import carry

import resumable
from resumable import (
    CheckpointError,
    CodeChangedError,
    CorruptCheckpoint,
    ExecutionLocked,
    ExecutionNotFound,
    NonDeterminismError,
    StoreUnavailable,
    aiter_checkpointed,
    list_executions,
    resume,
    status,
)
from resumable.runtime.loopsite import LoopShapeError


class TestExports:
    """Every public module declares a sorted __all__ of names it really has."""

    def test_all_is_sorted_and_resolvable(self):
        assert resumable.__all__ == sorted(resumable.__all__)
        for name in resumable.__all__:
            assert hasattr(resumable, name), name
        # Names load on first use from where _HOMES says: one entry per name.
        assert sorted(resumable._HOMES) == resumable.__all__

    def test_every_public_module_has_all(self):
        for info in pkgutil.iter_modules(resumable.__path__):
            if info.name.startswith("_") or info.name in ("runtime", "stores"):
                continue
            module = importlib.import_module(f"resumable.{info.name}")
            assert hasattr(module, "__all__"), f"resumable.{info.name} lacks __all__"
            assert module.__all__ == sorted(module.__all__)


class TestErrors:
    """Errors keep their fields, explain themselves, and survive pickling."""

    @pytest.mark.parametrize(
        "error",
        [
            ExecutionNotFound("abc", "sqlite:///x.db"),
            ExecutionLocked("abc", "host pid 1", 4.2),
            CodeChangedError("abc", "m:f", "m.py:3", "locals added: x"),
            NonDeterminismError("abc", "#2", "step a (m.py:3)", "step b (m.py:4)"),
            CheckpointError("loop f:loop0 (m.py:9)", "conn", "socket.socket", "cannot pickle"),
            CorruptCheckpoint("abc", "#0", "bad signature"),
            StoreUnavailable("redis://:***@h/0", "writing a checkpoint", "timeout"),
        ],
        ids=lambda e: type(e).__name__,
    )
    def test_round_trip(self, error):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
        assert "HINT" in str(error) or "Acknowledged" in str(error)
        assert isinstance(error, resumable.ResumableError)


class TestIdempotencyKey:
    """An execution id names one run: a completed id runs nothing again."""

    async def test_completed_id_returns_stored_result(self, store):
        execution_id = f"nightly-{uuid.uuid4().hex[:6]}"
        carry.EFFECTS.clear()
        first = await carry.numbers.options(execution_id=execution_id, store=store)(4)
        runs = carry.EFFECTS.total()
        again = await carry.numbers.options(execution_id=execution_id, store=store)(4)
        assert again == first and carry.EFFECTS.total() == runs
        assert await resume(execution_id, store=store) == first

    async def test_start_returns_a_handle(self, store):
        run = await carry.numbers.options(store=store).start(3)
        assert await run.result() == (3, 0.5 * 1.5**3, "012")
        found = await run.status()
        assert found.id == run.id and found.status == "completed" and found.attempts == 1
        assert [e.id for e in await list_executions(store=store, status="completed")] == [run.id]
        assert await list_executions(store=store, function="numbers")
        assert not await list_executions(store=store, status="failed")

    async def test_live_owner_locks_out_a_second_runner(self, store):
        gate = asyncio.Event()
        from jobs import waiting

        waiting.GATES["g"] = gate
        run = await waiting.wait_for_gate.options(store=store).start("g")
        await asyncio.sleep(0.01)
        with pytest.raises(ExecutionLocked) as caught:
            await resume(run.id, store=store)
        assert "pid" in str(caught.value)
        gate.set()
        assert await run.result() == "opened"


class TestMisuse:
    """Wrong use is reported where it happens, with what to do."""

    async def test_unknown_execution(self, store):
        with pytest.raises(ExecutionNotFound, match="no execution 'nope'"):
            await resume("nope", store=store)
        with pytest.raises(ExecutionNotFound):
            await status("nope", store=store)

    def test_decorating_a_sync_function(self):
        with pytest.raises(TypeError, match="async def"):
            resumable.resumable(lambda: None)

    def test_bad_options(self):
        with pytest.raises(ValueError, match="execution_id"):
            carry.numbers.options(execution_id="")
        with pytest.raises(ValueError, match="on_code_change"):
            carry.numbers.options(on_code_change="ignore")  # type: ignore[arg-type]

    async def test_helper_outside_async_for(self, store):
        from jobs import misuse

        with pytest.raises(LoopShapeError, match="is not the iterable of an `async for`"):
            await misuse.assigned_first.options(store=store)()

    async def test_bad_every_and_carry(self, store):
        from jobs import misuse

        with pytest.raises(ValueError, match="every must be an int >= 1"):
            await misuse.bad_every.options(store=store)()
        with pytest.raises(ValueError, match="'nonexistent' is not a local variable"):
            await misuse.bad_carry.options(store=store)()

    async def test_outside_an_execution_it_is_a_plain_loop(self):
        seen = [i async for i in aiter_checkpointed(range(3))]
        assert seen == [0, 1, 2]


class TestDeadOwner:
    """A dead owner on this host is recognised at once, zombies included."""

    def test_killed_but_unreaped_process_is_dead(self):
        import os
        import signal
        import subprocess
        import sys
        import time

        from resumable.runtime import identity

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            ticks = identity._read_start_ticks(child.pid)
            owner = f"{identity.socket.gethostname()}:{child.pid}:{ticks}"
            assert not identity.is_dead_local(owner)
            os.kill(child.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while identity._proc_stat(child.pid)[0] != "Z" and time.monotonic() < deadline:
                time.sleep(0.01)
            assert identity._proc_stat(child.pid)[0] == "Z"  # not reaped: still "exists"
            assert identity.is_dead_local(owner)
        finally:
            child.wait()


class TestOwnDeadRun:
    """A run of this process that died leaves a lease nobody holds: this
    process may resume at once, without waiting for the lease to expire."""

    async def test_resume_right_after_an_in_process_crash(self, store):
        from resumable.testing import SimulatedCrash, crash_after

        execution_id = f"own-{uuid.uuid4().hex[:6]}"
        with crash_after(2), pytest.raises(SimulatedCrash):
            await carry.numbers.options(execution_id=execution_id, store=store)(5)
        # No release of the dead run's lease: it is recognised as ours and dead.
        assert await resume(execution_id, store=store) == (10, 0.5 * 1.5**5, "01234")

    async def test_a_live_run_of_this_process_still_locks(self, store):
        from jobs import waiting

        gate = asyncio.Event()
        waiting.GATES["own"] = gate
        run = await waiting.wait_for_gate.options(store=store).start("own")
        with pytest.raises(ExecutionLocked):
            await resume(run.id, store=store)
        gate.set()
        assert await run.result() == "opened"
