"""Log lines as structlog events (in this process, through capture_logs):
bound with execution id, position and index; quiet at INFO; per-checkpoint
detail only at debug; never a value of the user's. Real processes for what a
program sees on stdout and stderr: tests/test_log_routes.py."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
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
def _debug() -> Iterator[None]:
    """The one switch for debug lines: the "resumable" logger's level."""
    logger = logging.getLogger("resumable")
    before = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(before)


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
