"""The command line against a shared Redis store: what another machine
sees of a run that died, and resuming it from there (real processes)."""

from __future__ import annotations

import json
import uuid

import pytest
from support.clirun import cli, kill, start_job, wait_for_loop
from support.redis_server import with_prefix


@pytest.fixture(name="url")
def _url(redis_url: str) -> str:
    return with_prefix(redis_url)  # a key prefix of its own: an empty "application"


class TestCommandsOnRedis:
    """list, show, resume and gc work the same on Redis as on SQLite."""

    def test_a_killed_run_seen_and_resumed_from_the_command_line(self, url: str):
        execution_id = f"cli-{uuid.uuid4().hex[:8]}"
        job = start_job(url, execution_id, 40, 0.01)
        wait_for_loop(url, execution_id, 5)
        kill(job)

        listed = cli("list", "--json", store=url)
        assert listed.returncode == 0, listed.stderr
        [row] = json.loads(listed.stdout)["executions"]
        assert row["id"] == execution_id and row["status"] == "running"
        assert row["orphaned"] is True  # its owner is gone

        shown = cli("show", execution_id, "--json", store=url)
        assert shown.returncode == 0, shown.stderr
        loop = json.loads(shown.stdout)["loops"][0]
        assert loop["total"] == 40 and 5 <= loop["done"] < 40

        resumed = cli("resume", execution_id, "--json", store=url)
        assert resumed.returncode == 0, resumed.stderr
        result = json.loads(resumed.stdout)
        assert result["result"]["total"] == sum(range(40))

        finished = json.loads(cli("show", execution_id, "--json", store=url).stdout)
        assert finished["status"] == "completed" and finished["attempts"] == 2
        gc = cli("gc", "--older-than", "0s", "--dry-run", "--json", store=url)
        assert gc.returncode == 0, gc.stderr
        assert [e["id"] for e in json.loads(gc.stdout)["executions"]] == [execution_id]

    def test_unknown_id_and_unreachable_server(self, url: str):
        missing = cli("show", "nope", store=url)
        assert missing.returncode == 3
        assert "nope" in missing.stderr and "Traceback" not in missing.stderr
        # ?unavailable_after: give up after 2 s rather than the default 30 s
        down = cli("list", store="redis://:hunter2@127.0.0.1:1/0?unavailable_after=2")
        assert down.returncode == 5, down.stderr
        assert "hunter2" not in down.stderr and "Traceback" not in down.stderr
