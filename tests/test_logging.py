"""structlog lines: bound with execution id, position and index; quiet at
INFO; per-checkpoint detail only at debug; never a value of the user's."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from clirun import cli_env
from crashing import TESTS
from jobs import batch, watched
from structlog.testing import capture_logs

from resumable import resume, subscribe
from resumable.runtime import events
from resumable.testing import SimulatedCrash, crash_after

DEBUG_EVENTS = {
    "checkpoint written",
    "iteration started",
    "item started",
    "step started",
    "step recorded",
    "step replayed",
}


@pytest.fixture(name="debug")
def _debug(monkeypatch):
    """As if RESUMABLE_LOG_LEVEL=debug had been set when the process started."""
    monkeypatch.setattr(events._hub, "debug_logs", True)


async def crashed(job, store, after: int, *args) -> str:
    execution_id = uuid.uuid4().hex
    with crash_after(after), pytest.raises(SimulatedCrash) as crash:
        await job.options(execution_id=execution_id, store=store)(*args)
    await store.release(crash.value.lease)
    return execution_id


class TestInfo:
    """At INFO an execution logs a handful of lines, each bound to its id."""

    async def test_a_whole_run_is_two_lines(self, store):
        batch.CALLS.clear()
        with capture_logs() as logs:
            await batch.pipeline.options(execution_id="quiet", store=store)(20)
        assert [(line["event"], line["log_level"]) for line in logs] == [
            ("execution started", "info"),
            ("execution completed", "info"),
        ]
        assert all(line["execution_id"] == "quiet" for line in logs)
        assert logs[0]["function"] == "pipeline" and logs[1]["seconds"] >= 0

    async def test_resume_says_from_where(self, store):
        batch.CALLS.clear()
        execution_id = await crashed(batch.pipeline, store, 5, 8)
        with capture_logs() as logs:
            await resume(execution_id, store=store)
        assert [line["event"] for line in logs] == [
            "execution resumed",
            "loop resumed",
            "execution completed",
        ]
        resumed, loop, _ = logs
        assert resumed["attempt"] == 2 and resumed["execution_id"] == execution_id
        assert (loop["position"], loop["index"], loop["execution_id"]) == ("#1", 4, execution_id)
        assert loop["loop"] == "pipeline:loop0(i)"

    async def test_failures_and_retries(self, store):
        batch.CALLS.clear()
        with capture_logs() as logs:
            await batch.retried.options(execution_id="r", store=store)(1, 3)
            with pytest.raises(RuntimeError):
                await watched.watched.options(execution_id="f", store=store)(1, 0.0, fail=True)
        retries = [line for line in logs if line["event"] == "item retried"]
        assert [(r["execution_id"], r["position"], r["index"], r["attempt"]) for r in retries] == [
            ("r", "#0", 0, 1),
            ("r", "#0", 0, 2),
        ]
        [failed] = [line for line in logs if line["event"] == "execution failed"]
        assert failed["log_level"] == "warning" and failed["error"] == "RuntimeError"


class TestDebug:
    """Checkpoint, step and start lines appear only when debug logs are asked for."""

    async def test_absent_by_default(self, store):
        batch.CALLS.clear()
        execution_id = await crashed(batch.pipeline, store, 5, 4)
        with capture_logs() as logs:
            await resume(execution_id, store=store)
        assert not {line["event"] for line in logs} & DEBUG_EVENTS

    async def test_present_at_debug_and_bound(self, store, debug):
        batch.CALLS.clear()
        execution_id = await crashed(batch.pipeline, store, 5, 8)  # at iteration 4 of 8
        with capture_logs() as logs:
            await resume(execution_id, store=store)
        assert {line["event"] for line in logs} >= DEBUG_EVENTS
        for line in logs:
            assert line["execution_id"] == execution_id
            if line["event"] != "execution completed" and line["event"] in DEBUG_EVENTS:
                assert "position" in line, line
        checkpoints = [line for line in logs if line["event"] == "checkpoint written"]
        assert ("#1", "loop", 5) in {(c["position"], c["kind"], c["index"]) for c in checkpoints}
        items = [
            (line["position"], line["index"]) for line in logs if line["event"] == "item started"
        ]
        assert ("#3", 0) in items  # the amap, item 0
        assert {line["log_level"] for line in logs if line["event"] in DEBUG_EVENTS} == {"debug"}

    async def test_a_subscriber_gets_debug_events_without_debug_lines(self, store):
        seen: list[events.Event] = []
        unsubscribe = subscribe(seen.append)
        try:
            with capture_logs() as logs:
                await batch.mapped.options(store=store)(3)
        finally:
            unsubscribe()
        assert any(isinstance(e, events.ItemStarted) for e in seen)
        assert not {line["event"] for line in logs} & DEBUG_EVENTS

    @pytest.mark.parametrize("level", ["debug", ""])
    def test_environment_variable(self, tmp_path, level):
        """RESUMABLE_LOG_LEVEL=debug, read at start-up by a fresh process."""
        snippet = "import asyncio\nfrom jobs import watched\nasyncio.run(watched.watched(3, 0.0))\n"
        env = cli_env(RESUMABLE_STORE=f"sqlite:///{tmp_path}/s.db", RESUMABLE_LOG_LEVEL=level)
        done = subprocess.run(
            [sys.executable, "-c", snippet],
            env=env,
            cwd=TESTS,
            capture_output=True,
            text=True,
            check=True,
        )
        lines = done.stdout.splitlines()
        assert sum("execution started" in line for line in lines) == 1
        debug_lines = [line for line in lines if "[debug" in line]
        if level == "debug":
            assert any("checkpoint written" in line and "index=2" in line for line in debug_lines)
            assert any("item started" in line for line in debug_lines)
        else:
            assert debug_lines == []
            assert len(lines) == 2  # started, completed


class TestNoValues:
    """No argument, result, carried value or exception message is ever logged."""

    @pytest.mark.parametrize("secret", [watched.SECRET, "fail-" + watched.SECRET])
    async def test_secret_never_appears(self, store, debug, secret):
        seen: list[events.Event] = []
        unsubscribe = subscribe(seen.append)
        try:
            with capture_logs() as logs:
                execution_id = await crashed(watched.leaky, store, 3, secret)
                try:
                    result = await resume(execution_id, store=store)
                except ValueError as exc:
                    assert secret in str(exc)  # the user still gets their exception
                else:
                    assert secret.upper() in result
        finally:
            unsubscribe()
        assert len(logs) > 10
        for text in (repr(logs), repr(seen)):
            assert secret not in text and secret.upper() not in text
