"""Store errors that tell the truth: a damaged file, a directory this user
may not enter, a read-only store, an unreachable or silent Redis. Each says
what it is, through the library and as a one-line CLI error with its own
exit code, and none claims that waiting will help when it will not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from jobs import watched
from structlog.testing import capture_logs
from support import unprivileged
from support.clirun import cli, cli_env
from support.crashing import TESTS
from test_cli import one_line_error

import resumable
from resumable._cli.exitcodes import ExitCode, for_error
from resumable.errors import (
    StoreDamaged,
    StorePermissionDenied,
    StoreReadOnly,
    StoreUnavailable,
)
from resumable.stores import SQLiteStore
from resumable.stores.redis import RedisStore

TRANSIENT_HINT = ("Acknowledged checkpoints are safe", "once the store is back")

# The library's side, in a process of its own (so that, as root, it can run
# without root's power over permissions): one action, its outcome as JSON.
LIBRARY = """
import asyncio, json, sys
import resumable
from jobs import watched

async def act(path, action, execution_id):
    if action == "list":
        return sorted(e.id for e in await resumable.list_executions(store=path))
    if action == "start":
        return await watched.watched.options(execution_id="new", store=path)(1, 0.0)
    return await resumable.resume(execution_id, store=path)

try:
    print(json.dumps({"ok": asyncio.run(act(*sys.argv[1:]))}))
except resumable.ResumableError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def run(*args: str, obey_permissions: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *args]
    if obey_permissions:
        command = unprivileged.command(*command)
    return subprocess.run(
        command, env=cli_env(), cwd=TESTS, capture_output=True, text=True, timeout=60, check=False
    )


def resumable_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, obeying file permissions even when the suite runs as root."""
    return run("-m", "resumable", *args, obey_permissions=True)


def library(path: Path, action: str, execution_id: str = "") -> dict[str, object]:
    done = run("-c", LIBRARY, str(path), action, execution_id, obey_permissions=True)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    outcome: dict[str, object] = json.loads(done.stdout)
    return outcome


async def make_store(path: Path, *, failed: bool = False) -> list[str]:
    """A store file with two executions (one failed, if asked), closed so that
    everything is in the file itself (no -wal left)."""
    store = SQLiteStore(path)
    try:
        await watched.watched.options(execution_id="one", store=store)(2, 0.0)
        if failed:
            with pytest.raises(RuntimeError):
                await watched.watched.options(execution_id="two", store=store)(2, 0.0, fail=True)
        else:
            await watched.watched.options(execution_id="two", store=store)(2, 0.0)
    finally:
        await store.close()
    return ["one", "two"]


@pytest.fixture(name="obeys_permissions", scope="session")
def _obeys_permissions(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip unless a subprocess can be made to obey file permissions: always
    when not root; as root, when dropping CAP_DAC_OVERRIDE works here."""
    if os.geteuid() != 0:
        return
    closed = tmp_path_factory.mktemp("probe") / "closed"
    closed.mkdir(mode=0)
    try:
        probe = run("-c", f"import os; os.listdir({str(closed)!r})", obey_permissions=True)
    finally:
        closed.chmod(0o700)
    if probe.returncode == 0:
        pytest.skip(
            "running as root, and dropping CAP_DAC_OVERRIDE (tests/support/unprivileged.py) "
            f"did not make permissions apply here: {probe.stderr.strip()[-200:]}"
        )


@pytest.fixture(name="chmod")
def _chmod() -> Iterator[object]:
    """chmod(path, mode), with every mode put back after the test."""
    changed: list[tuple[Path, int]] = []

    def change(path: Path, mode: int) -> None:
        changed.append((path, stat.S_IMODE(path.stat().st_mode)))
        path.chmod(mode)

    yield change
    for path, mode in reversed(changed):
        path.chmod(mode)


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    assert len(data) > 8 * 4096, "the store should span several pages"
    if how == "truncated":
        data = data[: len(data) // 2 + 123]
    elif how == "garbled header":
        data = b"\xa5" * 100 + data[100:]
    else:  # garbled pages: the tables' b-tree pages, not just bytes of a value
        data = data[: 2 * 4096] + b"\xa5" * (3 * 4096) + data[5 * 4096 :]
    path.write_bytes(data)


class TestDamagedFile:
    """A damaged SQLite file is called damaged, named, and sent to `.recover`
    and backups; it is not a store that is merely away for now."""

    @pytest.mark.parametrize("how", ["truncated", "garbled header", "garbled pages"])
    async def test_cli_and_library(self, tmp_path, how):
        path = tmp_path / "state.db"
        await make_store(path)
        store = SQLiteStore(path)  # more executions: pages for damage() to hit
        try:
            for i in range(40):
                await watched.watched.options(execution_id=f"bulk-{i}", store=store)(10, 0.0)
        finally:
            await store.close()
        damage(path, how)
        for command in (["list"], ["show", "one"], ["resume", "one"]):
            result = cli(*command, store=str(path))
            one_line_error(result, ExitCode.STORE_DAMAGED, "is damaged", str(path), ".recover")
            assert "backup" in result.stderr
            assert not any(hint in result.stderr for hint in TRANSIENT_HINT)
        with pytest.raises(StoreDamaged) as raised:
            await _list_with_a_new_store(path)
        message = str(raised.value)
        assert str(path) in message and f"sqlite3 {path} .recover" in message
        assert "backup" in message
        assert not any(hint in message for hint in TRANSIENT_HINT)
        assert isinstance(raised.value, StoreUnavailable)  # `except StoreUnavailable` still works
        assert for_error(raised.value) == ExitCode.STORE_DAMAGED == 9


@pytest.mark.usefixtures("obeys_permissions")
class TestPermissionDenied:
    """A store in a directory this user may not enter says "permission
    denied" and names the directory, not "nothing has run with it yet"."""

    async def test_directory_mode_000(self, tmp_path, chmod):
        home = tmp_path / "closed"
        home.mkdir()
        path = home / "state.db"
        await make_store(path)
        chmod(home, 0)
        result = resumable_cli("--store", str(path), "list")
        one_line_error(result, ExitCode.PERMISSION_DENIED, "permission denied", str(home))
        assert "nothing has run" not in result.stderr
        assert not any(hint in result.stderr for hint in TRANSIENT_HINT)
        outcome = library(path, "list")
        assert outcome["error"] == "StorePermissionDenied"
        assert "permission denied" in str(outcome["message"]) and str(home) in str(
            outcome["message"]
        )
        assert for_error(StorePermissionDenied("u", "p", "o", "r")) == ExitCode.PERMISSION_DENIED

    async def test_a_file_it_may_not_read(self, tmp_path, chmod):
        path = tmp_path / "state.db"
        await make_store(path)
        chmod(path, 0)
        result = resumable_cli("--store", str(path), "show", "one")
        one_line_error(result, ExitCode.PERMISSION_DENIED, "permission denied", str(path))
        assert "may not read the file" in result.stderr


@pytest.mark.usefixtures("obeys_permissions")
class TestReadOnly:
    """A store this user may read but not write is listed and shown; writing
    to it says it is read-only and names it."""

    @pytest.mark.parametrize("made_read_only", ["file", "directory", "both"])
    async def test_read_but_not_write(self, tmp_path, chmod, made_read_only):
        home = tmp_path / "store"
        home.mkdir()
        path = home / "state.db"
        await make_store(path, failed=True)
        if made_read_only in ("file", "both"):
            chmod(path, 0o444)
        if made_read_only in ("directory", "both"):
            chmod(home, 0o555)

        listed = resumable_cli("--store", str(path), "--json", "list")
        assert listed.returncode == 0, listed.stderr
        assert sorted(e["id"] for e in json.loads(listed.stdout)["executions"]) == ["one", "two"]
        shown = resumable_cli("--store", str(path), "show", "two")
        assert shown.returncode == 0, shown.stderr
        assert "RuntimeError: asked to fail" in shown.stdout
        assert library(path, "list") == {"ok": ["one", "two"]}

        result = resumable_cli("--store", str(path), "resume", "two")
        one_line_error(result, ExitCode.PERMISSION_DENIED, "is read-only", str(path))
        assert "nothing was written" in result.stderr
        assert not any(hint in result.stderr for hint in TRANSIENT_HINT)
        for action, execution_id in (("start", ""), ("resume", "two")):
            outcome = library(path, action, execution_id)
            assert outcome["error"] == "StoreReadOnly", outcome
            assert "read-only" in str(outcome["message"]) and str(path) in str(outcome["message"])
        assert issubclass(StoreReadOnly, StorePermissionDenied)


def closed_port() -> int:
    """A port on which nothing listens: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def first_stderr_line(process: subprocess.Popen[str], within: float) -> tuple[str, float]:
    """The process's first line on stderr and when it came (seconds after
    the call), or a failure after `within` seconds."""
    began = time.monotonic()
    assert process.stderr is not None
    line = process.stderr.readline()  # the warning is flushed at once
    took = time.monotonic() - began
    assert line, f"no warning within {within}s"
    return line, took


class TestUnreachableRedis:
    """An unreachable Redis is reported within about two seconds, while the
    client keeps retrying for `unavailable_after` seconds, then gives up."""

    def test_closed_port_cli(self):
        url = f"redis://127.0.0.1:{closed_port()}/0?unavailable_after=6"
        began = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "resumable", "--store", url, "list"],
            env=cli_env(),
            cwd=TESTS,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line, _ = first_stderr_line(process, 10)
            warned = time.monotonic() - began  # interpreter start-up included
            assert "redis store unreachable, retrying" in line
            assert "give_up_after=6" in line
            assert process.poll() is None, "it should still be retrying"
            _, rest = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        gave_up = time.monotonic() - began
        assert warned < 4.0, f"the first warning took {warned:.1f}s"
        assert gave_up >= 6.0
        assert process.returncode == ExitCode.STORE_UNAVAILABLE
        last = rest.strip().splitlines()[-1]
        assert last.startswith("resumable: store redis://127.0.0.1:")
        assert "still failing after 6." in last and "Traceback" not in rest

    def test_silent_server_cli(self):
        """A server that accepts connections but never answers is the case
        the first failure comes late for (command_timeout): warned at ~2 s."""
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0?unavailable_after=60"
            began = time.monotonic()
            process = subprocess.Popen(
                [sys.executable, "-m", "resumable", "--store", url, "list"],
                env=cli_env(),
                cwd=TESTS,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                line, _ = first_stderr_line(process, 10)
                warned = time.monotonic() - began
                assert "redis store not answering, still trying" in line, line
                assert process.poll() is None
            finally:
                process.kill()
                process.communicate()
        assert warned < 5.0, f"the first warning took {warned:.1f}s"

    async def test_closed_port_library(self):
        store = RedisStore(f"redis://127.0.0.1:{closed_port()}/0", unavailable_after=3)
        try:
            with capture_logs() as logs:
                began = time.monotonic()
                listing = asyncio.ensure_future(resumable.list_executions(store=store))
                while not logs and time.monotonic() - began < 5:
                    await asyncio.sleep(0.01)
                warned = time.monotonic() - began
                assert logs, "no warning"
                assert logs[0]["event"] == "redis store unreachable, retrying"
                assert logs[0]["log_level"] == "warning" and logs[0]["give_up_after"] == 3
                assert not listing.done(), "it should still be retrying"
                with pytest.raises(StoreUnavailable) as raised:
                    await listing
        finally:
            await store.close()
        assert warned < 2.0
        assert type(raised.value) is StoreUnavailable
        assert "still failing after 3." in str(raised.value)
        assert for_error(raised.value) == ExitCode.STORE_UNAVAILABLE


class TestUndecodableValues:
    """`show --values` on arguments that cannot be decoded shows everything
    else, a one-line note in place of the values, and exits 7 with one line."""

    @pytest.mark.parametrize(
        "blob",
        [b"m\xc1\xc1", b"m" + msgpack.packb(42), b"p\x80\x04garbage", b"s" + b"\x00" * 40],
        ids=["bad msgpack", "not a call", "bad pickle", "signed, no key"],
    )
    async def test_note_and_one_line_error(self, sqlite, url, blob):
        await watched.watched.options(execution_id="v", store=sqlite)(2, 0.0)
        with contextlib.closing(sqlite3.connect(sqlite.path)) as db, db:
            db.execute("UPDATE executions SET args = ? WHERE id = 'v'", (blob,))
        result = cli("show", "v", "--values", store=url)
        one_line_error(result, ExitCode.CORRUPT, "'arguments'")
        assert "status      completed" in result.stdout
        assert re.search(
            r"^values\n  <undecodable: CorruptCheckpoint, see the error below>$",
            result.stdout,
            re.M,
        ), result.stdout
        as_json = cli("--json", "show", "v", "--values", store=url)
        assert as_json.returncode == ExitCode.CORRUPT and "Traceback" not in as_json.stderr
        data = json.loads(as_json.stdout)
        assert data["values"] == [] and "refusing record 'arguments'" in data["values_error"]


async def _list_with_a_new_store(path: Path) -> None:
    store = SQLiteStore(path)  # raises here if the damage shows at once
    try:
        await resumable.list_executions(store=store)
    finally:
        await store.close()
