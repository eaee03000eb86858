"""One owner at a time, across real processes, on SQLite and on Redis.

Two processes that resume the same orphan at the same moment: exactly one
runs it, the other gets ExecutionLocked naming the winner. A frozen owner
(SIGSTOP) is alive, so its execution can only be taken over once its lease
has expired; when it wakes up (SIGCONT), the fencing token refuses all its
writes: it ends with LeaseLost and the new owner's result stands. The jobs
are in tests/jobs/leases.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from jobs import leases
from support.crashing import count, environment, kill_after_lines, read_store, resume_fresh, start

from resumable.stores import ExecutionRecord, Store

SHORT_TTL = "1"  # seconds: RESUMABLE_LEASE_TTL of the children, where asked for


def snapshot(store_url: str, execution_id: str) -> tuple[ExecutionRecord | None, dict[str, bytes]]:
    """The execution's record and checkpoints, as they are in the store now."""

    async def read(store: Store) -> tuple[ExecutionRecord | None, dict[str, bytes]]:
        return await store.get(execution_id), await store.load(execution_id)

    return read_store(store_url, read)


def wait_until_lease_expired(store_url: str, execution_id: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        record, _ = snapshot(store_url, execution_id)
        assert record is not None
        if record.lease_expires_at < time.time():
            return
        assert time.monotonic() < deadline, f"the lease of {record.owner} never expired"
        time.sleep(0.05)


# `python -m jobs.leases STORE ID AT`, except that AT comes on stdin once the
# racer has imported everything (it says "ready"): a start time fixed before
# the interpreters started (it was 1.5 s ahead) could pass before a slow
# start-up on a busy machine ended, and the late racer found the execution
# already completed by the other one.
RACER = """
import sys
from jobs import leases
import resumable.stores.redis, resumable.stores.sqlite
print("ready", flush=True)
sys.argv.append(sys.stdin.readline().strip())
leases.main()
"""


def race(store_url: str, execution_id: str, racers: int = 2) -> list[tuple[int, dict]]:
    """Start `racers` processes that all resume the execution at the same
    instant; return (pid, outcome) of each."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, store_url, execution_id],
            env=environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(racers)
    ]
    for process in processes:
        assert process.stdout.readline() == "ready\n", process.communicate()
    at = time.time() + 0.5  # every racer is waiting on its stdin
    for process in processes:
        process.stdin.write(f"{at}\n")
        process.stdin.flush()
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        outcomes.append((process.pid, json.loads(out.strip().splitlines()[-1])))
    assert time.time() > at, "a racer did not wait for the start"
    return outcomes


class TestRaceToResume:
    """Processes racing to resume one orphan: exactly one of them runs it."""

    @pytest.mark.parametrize("orphan", ["owner killed", "lease expired"])
    def test_exactly_one_runs_it(
        self, tmp_path: Path, store_url: str, orphan: str, monkeypatch: pytest.MonkeyPatch
    ):
        if orphan == "lease expired":
            monkeypatch.setenv("RESUMABLE_LEASE_TTL", SHORT_TTL)
        n = 40
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        child = start(store_url, execution_id, "leases.tally", n, log, 0.03)
        assert kill_after_lines(child, log, 8, 0.01)
        if orphan == "lease expired":
            wait_until_lease_expired(store_url, execution_id)
        else:  # the lease is live: only the owner's death lets a racer in
            record, _ = snapshot(store_url, execution_id)
            assert record is not None
            assert record.lease_expires_at > time.time() + 5

        outcomes = race(store_url, execution_id)

        winners = [(pid, o) for pid, o in outcomes if "result" in o]
        losers = [(pid, o) for pid, o in outcomes if "locked" in o]
        assert (len(winners), len(losers)) == (1, 1), outcomes
        [(winner, won)], [(_, lost)] = winners, losers
        assert won["result"] == leases.expected(n)
        assert lost["locked"].split(":")[:2] == [socket.gethostname(), str(winner)]
        assert f"{socket.gethostname()} pid {winner}" in lost["message"]
        effects = count(log)
        assert set(effects) == set(leases.tags(n))
        assert sum(effects.values()) - n <= 1, (
            "more than the killed owner's in-flight iteration ran twice"
        )
        record, _ = snapshot(store_url, execution_id)
        assert record is not None
        assert (record.status, record.owner) == ("completed", None)


class TestFrozenOwner:
    """A paused owner loses its lease to a new owner and can no longer write."""

    def test_takeover_after_expiry_fences_the_old_owner(
        self, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setenv("RESUMABLE_LEASE_TTL", SHORT_TTL)
        n = 30
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        frozen = start(store_url, execution_id, "leases.tally", n, log, 0.05)
        try:
            deadline = time.monotonic() + 30
            while count(log).total() < 6:
                assert frozen.poll() is None, frozen.communicate()
                assert time.monotonic() < deadline
                time.sleep(0.005)
            os.kill(frozen.pid, signal.SIGSTOP)
            record, _ = snapshot(store_url, execution_id)
            assert record is not None
            assert record.owner is not None
            assert record.owner.split(":")[1] == str(frozen.pid)

            # Alive, so only lease expiry lets another process in.
            wait_until_lease_expired(store_url, execution_id)
            assert resume_fresh(store_url, execution_id) == leases.expected(n)
            taken_over = snapshot(store_url, execution_id)
            assert taken_over[0] is not None
            assert taken_over[0].status == "completed"

            os.kill(frozen.pid, signal.SIGCONT)
            _, err = frozen.communicate(timeout=30)
        finally:
            if frozen.poll() is None:
                os.kill(frozen.pid, signal.SIGCONT)
                frozen.kill()
                frozen.communicate()

        assert frozen.returncode != 0
        assert "LeaseLost" in err, err
        assert snapshot(store_url, execution_id) == taken_over, "a write of the old owner landed"
        assert resume_fresh(store_url, execution_id) == leases.expected(n)
        effects = count(log)
        assert set(effects) == set(leases.tags(n))
        # In flight at the freeze: one iteration the new owner ran again, and
        # one the old owner ran after waking, before its write was refused.
        assert max(effects.values()) <= 2
        assert sum(effects.values()) - n <= 2, effects.most_common(3)
