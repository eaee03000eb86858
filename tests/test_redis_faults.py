"""Redis going away: killed with SIGKILL mid-run and restarted, recovering
orphans, and passwords kept out of every message and log line.

Each test that kills a server starts its own (resumable.testing.redis_server) on its
own port and directory, with appendonly and appendfsync always: a write that
Redis acknowledged is on disk, so the restarted server has it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import traceback
import uuid
from pathlib import Path

import pytest
import structlog
from jobs import leases, pipeline
from support.crashing import count, kill_after_lines, loop_done, resume_fresh, start
from support.redis_server import TEST_KEY, with_prefix
from test_leases import snapshot, wait_until_lease_expired

from resumable import StoreUnavailable, recover
from resumable.stores import open_store
from resumable.stores.redis import RedisStore
from resumable.testing.redis_server import RedisServer

DELAY = 0.01


@pytest.fixture(autouse=True)
def _redis_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis stores need a key (README, "Security"); subprocesses inherit it."""
    monkeypatch.setenv("RESUMABLE_SECRET_KEY", TEST_KEY)


@pytest.fixture(name="server")
def _server(tmp_path: Path):
    """A server of this test's own, which it may kill and restart."""
    with RedisServer(tmp_path / "redis", appendonly=True) as server:
        yield server


def wait_for_lines(process, log: Path, lines: int) -> None:
    deadline = time.monotonic() + 30
    while count(log).total() < lines:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.001)


class TestServerKilled:
    """SIGKILL of Redis mid-run: nothing acknowledged is lost."""

    @pytest.mark.parametrize("lines", [3, 17])
    def test_run_reconnects_and_finishes(self, tmp_path: Path, server: RedisServer, lines: int):
        n = 30
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        store_url = with_prefix(server.url)
        child = start(store_url, execution_id, "flat", n, log, DELAY)
        wait_for_lines(child, log, lines)
        server.kill()
        time.sleep(0.3)
        server.start()
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert "redis store unreachable, retrying" in out + err
        assert resume_fresh(store_url, execution_id) == pipeline.expected("flat", n)
        # The process never died: every iteration ran exactly once.
        assert count(log) == dict.fromkeys(pipeline.tags("flat", n), 1)

    @pytest.mark.parametrize("lines", [4, 19])
    def test_run_gives_up_then_resume_finishes(
        self, tmp_path: Path, server: RedisServer, lines: int
    ):
        n = 30
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        store_url = with_prefix(server.url)
        impatient = with_prefix(server.url, store_url.split("prefix=")[1], unavailable_after=0.3)
        child = start(impatient, execution_id, "flat", n, log, DELAY)
        wait_for_lines(child, log, lines)
        server.kill()
        _, err = child.communicate(timeout=60)
        assert child.returncode != 0
        assert "StoreUnavailable" in err
        assert f"while writing checkpoints of {execution_id!r}" in err
        server.start()

        # Line i+1 is logged only after the checkpoint of iteration i was
        # acknowledged: each of those survived the kill.
        logged = count(log).total()
        done = loop_done(store_url, execution_id)
        assert done >= logged - 1, f"{logged} iterations logged, only {done} checkpoints kept"
        assert resume_fresh(store_url, execution_id) == pipeline.expected("flat", n)
        effects = count(log)
        assert set(effects) == set(pipeline.tags("flat", n))
        assert all(effects[f"flat:{i}"] == 1 for i in range(done)), "acknowledged work ran again"
        assert sum(effects.values()) - n <= 1


class TestRecover:
    """recover() on Redis resumes executions whose lease expired, only those."""

    def test_resumes_orphans_and_leaves_live_runs_alone(
        self, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setenv("RESUMABLE_LEASE_TTL", "1")
        store_url = with_prefix(redis_url)
        logs = {name: tmp_path / f"{name}.log" for name in ("killed", "frozen", "live")}
        ids = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in logs}
        n = 12
        children = {}
        try:
            # One at a time, so that each is surely mid-way when stopped.
            for name in ("killed", "frozen", "live"):
                children[name] = start(
                    store_url,
                    ids[name],
                    "leases.tally",
                    400 if name == "live" else n,
                    logs[name],
                    0.05,
                )
                wait_for_lines(children[name], logs[name], 3)
                if name == "killed":
                    assert kill_after_lines(children[name], logs[name], 3, 0)
                elif name == "frozen":
                    os.kill(children[name].pid, signal.SIGSTOP)  # alive; its lease runs out
            frozen, _ = snapshot(store_url, ids["frozen"])
            assert frozen is not None
            assert (frozen.status, frozen.owner.split(":")[1]) == (
                "running",
                str(children["frozen"].pid),
            )
            wait_until_lease_expired(store_url, ids["frozen"])
            wait_until_lease_expired(store_url, ids["killed"])
            live_before, _ = snapshot(store_url, ids["live"])

            async def recover_all() -> dict[str, object]:
                store = RedisStore(store_url)
                try:
                    return await recover(store=store)
                finally:
                    await store.close()

            outcomes = asyncio.run(recover_all())

            assert outcomes == {
                ids["killed"]: leases.expected(n),
                ids["frozen"]: leases.expected(n),
            }
            live_after, _ = snapshot(store_url, ids["live"])
            assert live_before is not None
            assert live_after is not None
            assert (live_after.status, live_after.owner, live_after.lease_token) == (
                "running",
                live_before.owner,
                live_before.lease_token,
            )
            assert children["live"].poll() is None
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.kill()
                    child.communicate()
        for name in ("killed", "frozen"):
            assert set(count(logs[name])) == set(leases.tags(n))


class TestPasswords:
    """The password of a store URL never appears in errors, reprs or logs."""

    PASSWORD = "hunter2-" + uuid.uuid4().hex

    @staticmethod
    def texts(exc: BaseException) -> str:
        return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])

    async def test_unavailable_and_refused(self, tmp_path: Path, make_record):
        server = RedisServer(tmp_path / "redis", password=self.PASSWORD)
        server.start()
        store_url = with_prefix(server.url, unavailable_after=0.3)
        wrong = store_url.replace(self.PASSWORD, "wrong-" + self.PASSWORD[::-1])
        seen: list[str] = []
        try:
            with structlog.testing.capture_logs() as logs:
                store = open_store(store_url)
                seen += [store.url, repr(store)]
                lease = await store.create(make_record("e1"), "owner-a", 30)
                assert lease is not None
                await store.write(lease, {"k": b"v"})
                server.kill()
                with pytest.raises(StoreUnavailable) as down:
                    await store.write(lease, {"k": b"w"})
                assert "while writing checkpoints of 'e1'" in str(down.value)
                seen.append(self.texts(down.value))
                await store.close()

                server.start()
                began = time.monotonic()
                for url in (wrong, store_url.replace(f":{self.PASSWORD}@", "@")):
                    refused = open_store(url)
                    with pytest.raises(StoreUnavailable) as denied:
                        await refused.get("e1")
                    await refused.close()
                    assert "AuthenticationError" in str(denied.value)
                    seen += [refused.url, repr(refused), self.texts(denied.value)]
                assert time.monotonic() - began < 0.3, "authentication failures are not retried"
        finally:
            server.stop()
        seen += [repr(entry) for entry in logs]
        assert any("unreachable" in entry["event"] for entry in logs)
        everything = "\n".join(seen)
        assert "***" in everything
        assert self.PASSWORD not in everything
        assert self.PASSWORD[::-1] not in everything

    async def test_a_run_that_loses_its_store(self, tmp_path: Path):
        server = RedisServer(tmp_path / "redis", password=self.PASSWORD, appendonly=True)
        server.start()
        store = RedisStore(with_prefix(server.url, unavailable_after=0.3))
        log = tmp_path / "effects.log"
        try:
            with structlog.testing.capture_logs() as logs:
                run = await leases.tally.options(store=store).start(1000, str(log), 0.005)
                while count(log).total() < 5:
                    await asyncio.sleep(0.005)
                server.kill()
                with pytest.raises(StoreUnavailable) as info:
                    await run.result()
        finally:
            await store.close()
            server.stop()
        assert self.PASSWORD not in self.texts(info.value)
        assert logs
        assert self.PASSWORD not in "\n".join(repr(entry) for entry in logs)
