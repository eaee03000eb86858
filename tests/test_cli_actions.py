"""The commands that change executions, in real processes against a real
SQLite file: resume, cancel, recover and gc."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import textwrap
import time
import uuid

import pytest
from jobs import carry, compaction, watched
from support.clirun import cli, cli_env, kill, paused, start_job, wait_for_loop

from resumable import ExecutionCancelled, resume
from resumable._cli.exitcodes import ExitCode
from resumable.stores.base import ExecutionUpdate
from resumable.testing import SimulatedCrash, crash_after


def expected(n: int) -> dict[str, object]:
    total = sum(range(n))
    squares = sum(i * i for i in range(n))
    return {"total": total, "squares": squares, "note": f"published {total}", "token_chars": 0}


def status_of(url: str, execution_id: str) -> dict[str, object]:
    result = cli("show", execution_id, "--json", store=url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def orphan(url: str, execution_id: str, n: int = 30, *flags: str) -> None:
    """An execution whose process was SIGKILLed part-way through its loop."""
    process = start_job(url, execution_id, n, 0.02, *flags)
    wait_for_loop(url, execution_id, 5)
    kill(process)


class TestResume:
    """`resume ID` continues an execution in this process and prints its result."""

    def test_resumes_a_killed_run(self, url):
        orphan(url, "k1")
        before = status_of(url, "k1")
        assert before["status"] == "running" and before["orphaned"] is True
        result = cli("resume", "k1", "--json", store=url)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data == {
            "id": "k1",
            "status": "completed",
            "result": expected(30),
            "result_repr": repr(expected(30)),
        }
        after = status_of(url, "k1")
        assert (after["status"], after["attempts"]) == ("completed", 2)

    async def test_completed_prints_the_stored_result(self, url, sqlite):
        await carry.numbers.options(execution_id="n", store=sqlite)(4)
        result = cli("resume", "n", store=url)
        assert result.returncode == 0
        assert result.stdout == "(6, 2.53125, '0123')\n"

    async def test_failing_execution_exits_1(self, url, sqlite):
        with pytest.raises(RuntimeError):
            await watched.watched.options(execution_id="f", store=sqlite)(2, 0.0, fail=True)
        result = cli("resume", "f", store=url)
        assert result.returncode == ExitCode.EXECUTION_FAILED
        assert "execution 'f' failed: RuntimeError: asked to fail after 2 items" in result.stderr
        assert "resumable show f" in result.stderr and "Traceback" not in result.stderr
        assert status_of(url, "f")["attempts"] == 2

    async def test_function_not_importable(self, url, sqlite, tmp_path):
        with pytest.raises(RuntimeError):
            await watched.watched.options(execution_id="f", store=sqlite)(2, 0.0, fail=True)
        result = cli("resume", "f", store=url, env=cli_env(tests_on_path=False), cwd=tmp_path)
        assert result.returncode == ExitCode.NOT_IMPORTABLE
        assert "cannot import jobs.watched:watched here (ModuleNotFoundError" in result.stderr
        assert "PYTHONPATH" in result.stderr and "Traceback" not in result.stderr

    def test_locked_by_a_live_process(self, url):
        process = start_job(url, "busy", 2000, 0.02)
        try:
            wait_for_loop(url, "busy", 1)
            result = cli("resume", "busy", store=url)
            assert result.returncode == ExitCode.LOCKED, result.stderr
            assert f"pid {process.pid}" in result.stderr
        finally:
            kill(process)

    def test_unknown_id(self, url):
        assert cli("resume", "nope", store=url).returncode == ExitCode.NOT_FOUND

    async def test_code_changed(self, url, sqlite, tmp_path, monkeypatch):
        module = f"cli_changed_{uuid.uuid4().hex[:8]}"
        source = textwrap.dedent("""
            from resumable import aiter_checkpointed, resumable

            @resumable
            async def job(n):
                total = 0
                async for i in aiter_checkpointed(range(n)):
                    total += i
                return total
        """)
        (tmp_path / f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(tmp_path))
        job = __import__(module).job
        with crash_after(2), pytest.raises(SimulatedCrash) as crash:
            await job.options(execution_id="cc", store=sqlite)(10)
        await sqlite.release(crash.value.lease)
        (tmp_path / f"{module}.py").write_text(source.replace("total += i", "total += 2 * i"))
        env = cli_env(PYTHONPATH=str(tmp_path))
        result = cli("resume", "cc", store=url, env=env)
        assert result.returncode == ExitCode.CODE_CHANGED, result.stderr
        assert "changed since execution 'cc' started" in result.stderr
        restarted = cli("resume", "cc", "--on-code-change", "restart", store=url, env=env)
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout == "90\n"  # the new code, from the start

    def test_bad_on_code_change(self, url):
        result = cli("resume", "x", "--on-code-change", "ignore", store=url)
        assert result.returncode == ExitCode.USAGE


class TestCancel:
    """`cancel ID` stops a run wherever it runs; `resume` continues it."""

    def test_running_elsewhere(self, url):
        process = start_job(url, "c1", 60, 0.05)
        wait_for_loop(url, "c1", 3)
        with paused(process):  # the command's start-up must not outlast the job's loop
            result = cli("cancel", "c1", store=url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("cancel requested:")
        _, err = process.communicate(timeout=30)
        assert process.returncode != 0 and "ExecutionCancelled" in err
        stopped = status_of(url, "c1")
        assert stopped["status"] == "cancelled"
        assert 3 <= stopped["loops"][0]["done"] < 60
        resumed = cli("resume", "c1", "--json", store=url)
        assert json.loads(resumed.stdout)["result"] == expected(60)

    def test_orphan_is_marked_cancelled(self, url):
        orphan(url, "c2")
        result = cli("cancel", "c2", "--json", store=url)
        assert json.loads(result.stdout) == {"id": "c2", "status": "cancelled", "requested": False}
        recovered = cli("recover", "--json", store=url)
        assert json.loads(recovered.stdout)["recovered"] == []  # left alone once cancelled

    async def test_already_ended(self, url, sqlite):
        await carry.numbers.options(execution_id="n", store=sqlite)(2)
        result = cli("cancel", "n", store=url)
        assert result.returncode == 0
        assert result.stdout == "execution n already completed: nothing to cancel\n"

    def test_unknown_id(self, url):
        result = cli("cancel", "nope", store=url)
        assert result.returncode == ExitCode.NOT_FOUND and "no execution 'nope'" in result.stderr


class TestRecover:
    """`recover` resumes every execution whose owner is gone, here."""

    async def test_recovers_orphans_only(self, url, sqlite):
        await carry.numbers.options(execution_id="done", store=sqlite)(2)
        await asyncio.to_thread(orphan, url, "o1")
        await asyncio.to_thread(orphan, url, "o2", 20)
        result = cli("recover", "--json", store=url)
        assert result.returncode == 0, result.stderr
        report = sorted(json.loads(result.stdout)["recovered"], key=lambda r: r["id"])
        assert report == [
            {"id": "o1", "name": "watched", "outcome": "completed", "error": None},
            {"id": "o2", "name": "watched", "outcome": "completed", "error": None},
        ]
        assert status_of(url, "o2")["status"] == "completed"

    def test_a_failure_exits_1(self, url):
        orphan(url, "bad", 30, "fail")
        result = cli("recover", store=url)
        assert result.returncode == ExitCode.EXECUTION_FAILED
        header, row = result.stdout.splitlines()
        assert header.split() == ["ID", "FUNCTION", "OUTCOME", "ERROR"]
        assert row.split()[:3] == ["bad", "watched", "failed"]
        assert "RuntimeError: asked to fail after 30 items" in row

    def test_nothing_to_recover(self, url):
        result = cli("recover", store=url)
        assert result.returncode == 0
        assert result.stdout.startswith("nothing to recover in")


class TestGc:
    """`gc --older-than` deletes executions that ended before the cutoff, nothing else."""

    @pytest.fixture(name="aged")
    async def _aged(self, sqlite, tmp_path):
        await carry.numbers.options(execution_id="old-done", store=sqlite)(2)
        with pytest.raises(RuntimeError):
            await watched.watched.options(execution_id="old-failed", store=sqlite)(1, 0, fail=True)
        await carry.numbers.options(execution_id="new-done", store=sqlite)(2)
        run = await watched.watched.options(execution_id="cancelled", store=sqlite).start(500, 0.01)
        await asyncio.sleep(0.05)
        await run.cancel()
        with pytest.raises(ExecutionCancelled):
            await run.result()
        with crash_after(1), pytest.raises(SimulatedCrash) as crash:
            await carry.numbers.options(execution_id="running", store=sqlite)(5)
        await sqlite.release(crash.value.lease)
        eight_days_ago = time.time() - 8 * 86400
        with sqlite3.connect(tmp_path / "state.db") as db:
            db.execute(
                "UPDATE executions SET finished_at = ? WHERE id IN ('old-done', 'old-failed')",
                (eight_days_ago,),
            )
        db.close()

    def ids(self, url: str) -> set[str]:
        listed = json.loads(cli("list", "--json", store=url).stdout)["executions"]
        return {e["id"] for e in listed}

    async def test_dry_run_then_delete(self, url, aged):
        dry = cli("gc", "--older-than", "7d", "--dry-run", "--json", store=url)
        assert dry.returncode == 0, dry.stderr
        data = json.loads(dry.stdout)
        assert data["dry_run"] is True and data["skipped"] == []
        assert {e["id"] for e in data["executions"]} == {"old-done", "old-failed"}
        assert abs(data["cutoff"] - (time.time() - 7 * 86400)) < 60
        assert len(self.ids(url)) == 5  # nothing deleted
        done = cli("gc", "--older-than", "7d", store=url)
        assert done.returncode == 0
        assert "deleted 2 executions that ended before" in done.stdout
        assert self.ids(url) == {"new-done", "cancelled", "running"}
        assert cli("show", "old-done", store=url).returncode == ExitCode.NOT_FOUND

    async def test_running_executions_are_never_collected(self, url, aged):
        result = cli("gc", "--older-than", "0s", "--json", store=url)
        deleted = {e["id"] for e in json.loads(result.stdout)["executions"]}
        assert deleted == {"old-done", "old-failed", "new-done", "cancelled"}
        assert self.ids(url) == {"running"}
        assert cli("resume", "running", store=url).stdout == "(10, 3.796875, '01234')\n"

    @pytest.mark.parametrize("duration", ["7", "7w", "-1d", "d", "1.5.2h", ""])
    def test_bad_durations(self, url, duration):
        result = cli("gc", f"--older-than={duration}", store=url)
        assert result.returncode == ExitCode.USAGE
        assert "invalid duration" in result.stderr

    def test_older_than_is_required(self, url):
        assert cli("gc", store=url).returncode == ExitCode.USAGE


class TestGcCompact:
    """`gc --compact` keeps failed and cancelled executions resumable and
    deletes only their records that no resume reads: those that releases
    before format 3 left under finished iterations and items."""

    async def test_leftovers_go_and_the_execution_resumes_exactly(self, url, sqlite):
        compaction.STEPS_RUN.clear()
        with crash_after(41), pytest.raises(SimulatedCrash) as crash:
            await compaction.step_per_iteration.options(store=sqlite, execution_id="old")(30)
        lease = crash.value.lease
        in_flight = (await sqlite.load("old"))["#0[20]/#0"]  # iteration 20's step
        # What an older release left: a step record per finished iteration.
        await sqlite.write(lease, {f"#0[{i}]/#0": in_flight for i in range(20)})
        ended = time.time() - 8 * 86400
        await sqlite.update(lease, ExecutionUpdate(status="failed", finished_at=ended))
        await sqlite.release(lease)
        before = await sqlite.load("old")
        dry = cli("gc", "--older-than", "7d", "--compact", "--dry-run", "--json", store=url)
        assert dry.returncode == 0, dry.stderr
        [entry] = json.loads(dry.stdout)["compacted"]
        assert (entry["id"], entry["records_removed"]) == ("old", 20)
        assert await sqlite.load("old") == before  # a dry run changes nothing
        done = cli("gc", "--older-than", "7d", "--compact", store=url)
        assert done.returncode == 0, done.stderr
        assert "compacted 1 failed or cancelled execution (still resumable): 20 records" in (
            done.stdout
        )
        assert [k for k in await sqlite.load("old") if "/" in k] == ["#0[20]/#0"]
        record = await sqlite.get("old")
        assert record is not None and record.status == "failed"
        assert await resume("old", store=sqlite) == [f"result {i}" for i in range(30)]
        assert list(range(30)) == compaction.STEPS_RUN  # step 20 came from its record

    async def test_completed_ones_are_still_deleted(self, url, sqlite, tmp_path):
        await carry.numbers.options(execution_id="done", store=sqlite)(2)
        result = cli("gc", "--older-than", "0s", "--compact", "--json", store=url)
        data = json.loads(result.stdout)
        assert [e["id"] for e in data["executions"]] == ["done"] and data["compacted"] == []


async def test_resume_in_process_after_cli_cancel(url, sqlite):
    """The library and the command share one store format: a run cancelled
    by the command resumes from the library."""
    run = await watched.watched.options(execution_id="mix", store=sqlite).start(200, 0.01)
    await asyncio.sleep(0.2)
    result = await asyncio.to_thread(cli, "cancel", "mix", store=url)
    assert result.returncode == 0
    with pytest.raises(ExecutionCancelled):
        await run.result()
    assert await resume("mix", store=sqlite) == expected(200)
