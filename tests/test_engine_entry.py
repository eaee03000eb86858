"""The engine's one entry (`start_or_resume`), the process registry's one
answer to "is the owner gone?", and the hint for a script that runs its work
at import."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support.clirun import cli, cli_env

from resumable import (
    ExecutionStatus,
    ModuleRunsOnImport,
    SQLiteStore,
    _config,
    aiter_checkpointed,
    recover,
    resumable,
    status,
)
from resumable.runtime import engine, identity
from resumable.runtime.registry import REGISTRY, Registry
from resumable.stores import ExecutionRecord
from resumable.testing import SimulatedCrash, crash_after

CALLS: list[int] = []


@resumable
async def count_to(n: int) -> int:
    total = 0
    async for i in aiter_checkpointed(range(n)):
        CALLS.append(i)
        total += i
    return total


def _record(**fields: object) -> ExecutionRecord:
    base = ExecutionRecord(
        id="e1",
        function="m:f",
        name="f",
        args=b"",
        fingerprint="",
        location="m.py:1",
        status="running",
        owner="elsewhere:1:1",
        lease_expires_at=time.time() + 60,
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def _dead_owner() -> str:
    """The owner text of a process of this host that has exited."""
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from resumable.runtime import identity; print(identity.this_owner())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return child.stdout.strip()


class TestIsOrphan:
    def test_a_live_lease_of_another_host_is_not_an_orphan(self) -> None:
        assert not Registry().is_orphan(_record())

    def test_an_expired_lease_is_an_orphan(self) -> None:
        assert Registry().is_orphan(_record(lease_expires_at=time.time() - 1))

    def test_a_dead_process_of_this_host_is_gone_before_its_lease_expires(self) -> None:
        assert Registry().is_orphan(_record(owner=_dead_owner()))

    def test_our_own_lease_without_a_run_holding_it_is_gone(self) -> None:
        registry = Registry()
        ours = _record(owner=identity.this_owner())
        assert registry.is_orphan(ours)
        registry.held.add(ours.id)
        assert not registry.is_orphan(ours)

    def test_only_running_executions_are_orphans(self) -> None:
        for final in ("completed", "failed", "cancelled"):
            assert not Registry().is_orphan(_record(status=final, lease_expires_at=0.0))

    def test_a_status_view_answers_as_the_record_does(self) -> None:
        record = _record(owner=_dead_owner())
        view = ExecutionStatus(
            id=record.id,
            name=record.name,
            function=record.function,
            location="",
            status=record.status,
            created_at=0.0,
            updated_at=0.0,
            started_at=None,
            finished_at=None,
            attempts=1,
            owner=record.owner,
            lease_expires_at=record.lease_expires_at,
            error=None,
        )
        assert view.orphaned == REGISTRY.is_orphan(record) is True


async def test_status_and_recover_agree_on_a_dead_run_of_this_process(tmp_path: Path) -> None:
    """A run of ours that died (here a simulated crash) keeps a live lease
    under our own owner: both `status` and `recover` see that it is gone."""
    store = SQLiteStore(tmp_path / "state.db")
    try:
        CALLS.clear()
        with crash_after(3), pytest.raises(SimulatedCrash):
            await count_to.options(execution_id="dead-here", store=store)(6)
        view = await status("dead-here", store=store)
        assert view.status == "running" and view.lease_expires_at > time.time()
        assert view.orphaned
        outcomes = await recover(store=store)
        assert outcomes == {"dead-here": 15}
        assert CALLS == [0, 1, 2, 3, 4, 5]  # crashed after 3 checkpoints; resumed at 3
    finally:
        await store.close()


async def test_start_or_resume_gives_a_stored_result_without_running(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    try:
        settings = _config.settings(store)
        call = engine.Call(count_to.target, (4,), {})
        first = await engine.start_or_resume(settings, execution_id="once", call=call)
        assert isinstance(first.outcome, asyncio.Task)
        assert await first.outcome == 6
        CALLS.clear()
        again = await engine.start_or_resume(settings, execution_id="once", call=call)
        assert again.outcome.done() and again.outcome.result() == 6
        resumed = await engine.start_or_resume(settings, execution_id="once")
        assert resumed.outcome.result() == 6 and CALLS == []
        assert (await store.get("once")).attempts == 1  # type: ignore[union-attr]
        with pytest.raises(TypeError, match="needs a call, an execution_id"):
            await engine.start_or_resume(settings)
    finally:
        await store.close()


UNGUARDED = textwrap.dedent(
    """
    import asyncio, os, signal
    from resumable import aiter_checkpointed, resumable

    @resumable
    async def job(n):
        async for i in aiter_checkpointed(range(n)):
            if i == 2 and os.environ.get("DIE") == "1":
                os.kill(os.getpid(), signal.SIGKILL)
        return n

    async def main():
        print(await job.options(execution_id="unguarded")(5))

    asyncio.run(main())  # no `if __name__ == "__main__":` guard
    """
)


def test_resuming_a_script_without_a_main_guard_says_so(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    store = f"sqlite:///{tmp_path / 'state.db'}"
    env = cli_env(RESUMABLE_STORE=store, DIE="1")
    killed = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, check=False)
    assert killed.returncode == -9
    result = cli("resume", "unguarded", store=store, env={**env, "DIE": "0"}, cwd=tmp_path)
    assert result.returncode == 8, result.stderr  # NOT_IMPORTABLE
    assert 'if __name__ == "__main__":' in result.stderr
    assert "asyncio.run" in result.stderr and str(script) in result.stderr
    assert "PYTHONPATH" not in result.stderr


def test_the_import_error_is_typed_and_names_the_script(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    code = textwrap.dedent(
        f"""
        import asyncio
        from resumable.runtime import references
        from resumable.errors import ModuleRunsOnImport
        async def main():
            try:
                references.resolve("__main__:job", {str(script) + ":5"!r})
            except ModuleRunsOnImport as exc:
                assert isinstance(exc, ImportError)
                print("refused:", exc.module)
        asyncio.run(main())
        """
    )
    env = cli_env(DIE="0", RESUMABLE_STORE="memory://")
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert found.stdout.strip() == f"refused: {script}", found.stderr
    assert issubclass(ModuleRunsOnImport, ImportError)  # `except ImportError` still catches it
