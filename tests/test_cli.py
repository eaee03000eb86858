"""The `resumable` command, run in real processes against a real SQLite
file: list, show, errors, exit codes and the demo. (resume, cancel, recover
and gc: test_cli_actions.py; show --follow in a terminal: test_cli_follow.py.)
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jobs import carry, waiting, watched
from support.clirun import cli, cli_env, kill, start_job, wait_for_loop

from resumable import ExecutionCancelled, _config
from resumable._cli.exitcodes import MEANINGS, ExitCode
from resumable.stores import SQLiteStore
from resumable.stores.base import ExecutionRecord

README = Path(__file__).parent.parent / "README.md"
EXECUTION_KEYS = {
    "id", "name", "function", "location", "status", "orphaned", "cancel_requested",
    "attempts", "owner", "created_at", "started_at", "finished_at", "updated_at",
    "ran_seconds", "error", "parent_id", "unsigned",
}  # fmt: skip


@pytest.fixture(name="seeded")
async def _seeded(sqlite: SQLiteStore) -> dict[str, str]:
    """One execution of each ended status, oldest first: completed, failed, cancelled."""
    await carry.numbers.options(execution_id="done-1", store=sqlite)(5)
    await asyncio.sleep(0.01)  # distinct created_at: "newest first" is checkable
    with pytest.raises(RuntimeError):
        await watched.watched.options(execution_id="failed-1", store=sqlite)(3, 0.0, fail=True)
    await asyncio.sleep(0.01)
    waiting.GATES["never"] = asyncio.Event()
    run = await waiting.wait_for_gate.options(execution_id="cancelled-1", store=sqlite).start(
        "never"
    )
    await asyncio.sleep(0.01)
    await run.cancel()
    with pytest.raises(ExecutionCancelled):
        await run.result()
    return {"completed": "done-1", "failed": "failed-1", "cancelled": "cancelled-1"}


def one_line_error(result, code: ExitCode, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resumable: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


class TestList:
    """`list` shows executions newest first, as a table or as JSON."""

    async def test_table_newest_first(self, url, seeded):
        result = cli("list", store=url)
        assert result.returncode == 0, result.stderr
        header, *rows = result.stdout.splitlines()
        assert header.split() == ["ID", "FUNCTION", "STATUS", "CREATED", "RAN", "ATTEMPTS", "ERROR"]
        assert [row.split()[0] for row in rows] == ["cancelled-1", "failed-1", "done-1"]
        assert "RuntimeError: asked to fail after 3 items" in rows[1]

    async def test_json_has_stable_keys(self, url, seeded):
        result = cli("list", "--json", store=url)
        data = json.loads(result.stdout)
        assert data["store"] == url
        assert [e["id"] for e in data["executions"]] == ["cancelled-1", "failed-1", "done-1"]
        for execution in data["executions"]:
            assert set(execution) == EXECUTION_KEYS
        by_id = {e["id"]: e for e in data["executions"]}
        assert by_id["done-1"]["status"] == "completed"
        assert by_id["failed-1"]["error"] == "RuntimeError: asked to fail after 3 items"
        assert by_id["cancelled-1"]["status"] == "cancelled"

    async def test_filters_and_limit(self, url, seeded):
        def ids(*args: str) -> list[str]:
            result = cli("list", "--json", *args, store=url)
            assert result.returncode == 0, result.stderr
            return [e["id"] for e in json.loads(result.stdout)["executions"]]

        assert ids("--status", "failed") == ["failed-1"]
        assert ids("--function", "numbers") == ["done-1"]
        assert ids("--function", "jobs.carry:numbers") == ["done-1"]
        assert ids("--limit", "1") == ["cancelled-1"]
        assert ids("--status", "running") == []

    async def test_options_after_the_command(self, url, seeded):
        """--store and --json work before or after the command."""
        result = cli("list", "--store", url, "--json")
        assert len(json.loads(result.stdout)["executions"]) == 3

    async def test_empty_store(self, url):
        result = cli("list", "--status", "failed", store=url)
        assert result.returncode == 0
        assert result.stdout.strip() == f"no executions in {url} with status=failed"

    @pytest.mark.parametrize(
        "args",
        [["list", "--status", "bogus"], ["list", "--limit", "0"], ["list", "--limit", "x"],
         ["frobnicate"], [], ["show"]],
        ids=["status", "limit-0", "limit-x", "command", "no-command", "no-id"],
    )  # fmt: skip
    def test_bad_arguments_exit_2(self, url, args):
        result = cli(*args, store=url)
        assert result.returncode == ExitCode.USAGE
        assert "usage: resumable" in result.stderr and "Traceback" not in result.stderr


class TestShow:
    """`show` tells status, code, argument types, progress, timings and errors."""

    async def test_completed_with_progress(self, url, sqlite):
        await watched.watched.options(execution_id="w", store=sqlite)(7, 0.0, token=watched.SECRET)
        result = cli("show", "w", store=url)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert re.search(r"^status\s+completed$", out, re.M)
        assert re.search(r"^function\s+watched \(jobs\.watched:watched\)$", out, re.M)
        assert re.search(r"^code\s+.*jobs/watched\.py:\d+$", out, re.M)
        assert re.search(r"^arguments\s+args\[0\]\s+int$", out, re.M)
        assert re.search(r"^\s+token\s+str, 18 chars$", out, re.M)
        assert re.search(r"loop\s+#0\s+watched:loop0\(i\).*7/7\s+100%", out)
        assert re.search(r"amap\s+#1\s+amap\(.*7/7\s+100%\s+0 running, 0 pending, 0 failed", out)
        assert watched.SECRET not in out

    async def test_values_only_when_asked(self, url, sqlite):
        await watched.watched.options(execution_id="w", store=sqlite)(2, 0.0, token=watched.SECRET)
        assert watched.SECRET not in cli("show", "w", "--json", store=url).stdout
        shown = cli("show", "w", "--values", store=url)
        assert re.search(rf"^\s+token\s+'{watched.SECRET}'$", shown.stdout, re.M)
        data = json.loads(cli("show", "w", "--json", "--values", store=url).stdout)
        assert {"name": "token", "repr": repr(watched.SECRET)} in data["values"]

    async def test_json(self, url, sqlite):
        await watched.watched.options(execution_id="w", store=sqlite)(5, 0.0, fail=False)
        data = json.loads(cli("show", "w", "--json", store=url).stdout)
        assert set(data) >= EXECUTION_KEYS
        assert data["status"] == "completed" and data["attempts"] == 1
        assert data["arguments"] == [  # as passed: defaults are not stored
            {"name": "args[0]", "type": "int"},
            {"name": "args[1]", "type": "float"},
            {"name": "fail", "type": "bool"},
        ]
        [loop] = data["loops"]
        assert (loop["position"], loop["done"], loop["total"], loop["finished"]) == (
            "#0",
            5,
            5,
            True,
        )
        [fanout] = data["fanouts"]
        assert fanout["kind"] == "amap" and fanout["position"] == "#1"
        counts = {k: fanout[k] for k in ("done", "total", "in_flight", "pending", "failed")}
        assert counts == {"done": 5, "total": 5, "in_flight": 0, "pending": 0, "failed": 0}
        assert data["traceback"] is None and data["unreadable_records"] == 0

    async def test_failed_shows_the_traceback(self, url, seeded):
        result = cli("show", "failed-1", store=url)
        assert re.search(r"^status\s+failed$", result.stdout, re.M)
        assert re.search(
            r"^error\s+RuntimeError: asked to fail after 3 items$", result.stdout, re.M
        )
        assert "  Traceback (most recent call last):" in result.stdout
        assert "in watched" in result.stdout
        data = json.loads(cli("show", "failed-1", "--json", store=url).stdout)
        assert data["traceback"].startswith("Traceback") and data["error"].startswith("Runtime")

    async def test_pickled_argument_is_described_without_importing_it(self, url, sqlite, tmp_path):
        await watched.echo.options(execution_id="e", store=sqlite)(watched.Payload(watched.SECRET))
        # No tests/ on the path: jobs.watched cannot be imported, and need not be.
        result = cli("show", "e", store=url, env=cli_env(tests_on_path=False), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert re.search(r"args\[0\]\s+jobs\.watched\.Payload \(pickled\)", result.stdout)
        assert watched.SECRET not in result.stdout

    async def test_describing_never_runs_pickled_code(self, url, sqlite, tmp_path):
        """A hostile argument blob is described, and its payload never runs."""
        marker = tmp_path / "pwned"

        class Hostile:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        record = ExecutionRecord(
            id="hostile",
            function="nowhere:nothing",
            name="nothing",
            args=b"p" + pickle.dumps(((Hostile(),), {})),
            fingerprint="x",
            location="nowhere.py:1",
            created_at=time.time(),
            updated_at=time.time(),
        )
        lease = await sqlite.create(record, "tester:1:1", 30.0)
        await sqlite.release(lease)
        result = cli("show", "hostile", store=url)
        assert result.returncode == 0, result.stderr
        assert re.search(r"args\[0\]\s+(posix|nt)\.system \(pickled\)", result.stdout)
        assert not marker.exists()

    async def test_signed_records(self, url, sqlite, monkeypatch):
        """With RESUMABLE_SECRET_KEY progress shows; without, show says why not,
        and decoding values is refused (exit 7) rather than trusted."""
        monkeypatch.setattr(_config._config, "secret_key", b"k3y")
        await watched.watched.options(execution_id="s", store=sqlite)(3, 0.0)
        keyed = cli("show", "s", "--values", store=url, env=cli_env(RESUMABLE_SECRET_KEY="k3y"))
        assert re.search(r"loop\s+#0\s.*3/3", keyed.stdout), keyed.stdout + keyed.stderr
        assert re.search(r"^\s+args\[0\]\s+3$", keyed.stdout, re.M)
        unkeyed = cli("show", "s", store=url)
        assert unkeyed.returncode == 0
        assert re.search(r"^arguments\s+args\[0\]\s+int$", unkeyed.stdout, re.M)
        assert re.search(r"progress unreadable: \d+ record\(s\) could not", unkeyed.stdout)
        assert "RESUMABLE_SECRET_KEY" in unkeyed.stdout
        refused = cli("show", "s", "--values", store=url)
        one_line_error(refused, ExitCode.CORRUPT, "refusing record 'arguments'")

    async def test_unknown_id(self, url, seeded):
        one_line_error(cli("show", "nope", store=url), ExitCode.NOT_FOUND, "no execution 'nope'")


class TestStoreErrors:
    """Unreachable, missing or malformed stores give one line and an exit code."""

    def test_directory_instead_of_a_file(self, tmp_path):
        result = cli("list", store=f"sqlite:///{tmp_path}")
        one_line_error(result, ExitCode.STORE_UNAVAILABLE, "unavailable while opening")

    def test_path_under_a_file(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("")
        result = cli("list", store=f"sqlite:///{blocker}/state.db")
        one_line_error(result, ExitCode.STORE_UNAVAILABLE, "no store at", "--store")

    def test_environment_variable(self, tmp_path):
        env = cli_env(RESUMABLE_STORE=str(tmp_path / "missing.db"))
        result = cli("show", "x", env=env)
        one_line_error(result, ExitCode.STORE_UNAVAILABLE, "missing.db", "RESUMABLE_STORE")

    def test_default_store_missing(self, tmp_path):
        result = cli("list", cwd=tmp_path)
        one_line_error(result, ExitCode.STORE_UNAVAILABLE, ".resumable/state.db")
        assert not (tmp_path / ".resumable").exists()  # nothing created on the way

    def test_bad_url(self):
        one_line_error(cli("list", store="ftp://host/x"), ExitCode.USAGE, "unsupported store URL")
        one_line_error(cli("list", store="memory://?x=1"), ExitCode.USAGE, "unknown option")


class TestExitCodes:
    """The exit codes are defined once and documented in the README and --help."""

    def test_readme_table_matches(self):
        readme = README.read_text(encoding="utf-8")
        for code, meaning in MEANINGS.items():
            assert f"| {int(code)} | {meaning} |" in readme, code

    def test_help_lists_them(self):
        result = cli("--help")
        assert result.returncode == 0
        for code in ExitCode:
            assert re.search(rf"^\s+{int(code)}\s+\S", result.stdout, re.M), code

    @pytest.mark.parametrize(
        "command", ["list", "show", "resume", "cancel", "recover", "gc", "demo"]
    )
    def test_command_help(self, command):
        assert cli(command, "--help").returncode == 0

    def test_console_script(self):
        script = Path(sys.executable).with_name("resumable")
        assert script.exists(), "the console script is not installed: make install"
        done = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
        assert done.returncode == 0 and "usage: resumable" in done.stdout


class TestDemo:
    """`resumable demo` tells its story, and leaves the run for `list` and `show`."""

    def test_demo(self, tmp_path):
        result = cli("demo", cwd=tmp_path, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "2. We kill it with SIGKILL after" in out
        assert re.search(r"status\s+running \(owner gone\)", out)
        assert "It started at document" in out
        assert "No document whose checkpoint was written ran again." in out
        listed = json.loads(cli("list", "--json", cwd=tmp_path).stdout)["executions"]
        assert [(e["name"], e["status"], e["attempts"]) for e in listed] == [
            ("digest", "completed", 2)
        ]


def _seconds(shown: str) -> float:
    """'3.2s', '1m 05s' -> seconds (what `formatting.span` prints under an hour)."""
    minutes, _, seconds = shown.rpartition("m ")
    return float(minutes or 0) * 60 + float(seconds.removesuffix("s"))


class TestKilledRun:
    """`show` on a run killed with SIGKILL says how long it ran, not "0.0s"."""

    def test_ran_covers_the_real_elapsed_time(self, url):
        job = start_job(url, "killed", 1000, 0.02)
        wait_for_loop(url, "killed", 1)
        time.sleep(3)
        kill(job)
        killed_at = time.time()
        data = json.loads(cli("show", "killed", "--json", store=url).stdout)
        assert data["status"] == "running" and data["orphaned"]
        really = killed_at - data["started_at"]
        shown = cli("show", "killed", store=url)
        assert shown.returncode == 0, shown.stderr
        ran = re.search(
            r"^ran\s+(\S+(?: \S+s)?) to (\S+(?: \S+s)?) \(latest attempt\)", shown.stdout, re.M
        )
        assert ran, shown.stdout
        low, high = _seconds(ran[1]), _seconds(ran[2])
        assert low <= really <= high + 0.1, (low, really, high)
        assert high >= 3.0
        listed = cli("list", store=url).stdout
        assert re.search(r"^killed\s.*\s\d\S* to \d", listed, re.M), listed
