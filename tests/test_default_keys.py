"""Records are signed by default (README, "Security"): SQLite stores with a
per-user key file made on first use, Redis stores only with a configured key
(else `SecretKeyRequired`), memory stores not at all; RESUMABLE_ALLOW_UNSIGNED
opts out, with one warning per store."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from jobs import carry
from structlog.testing import capture_logs
from support.clirun import cli, cli_env, kill, start_job, wait_for_loop
from support.planted import Planted
from support.redis_server import with_prefix

from resumable import (
    CorruptCheckpoint,
    KeyFileError,
    MemoryStore,
    SecretKeyRequired,
    SQLiteStore,
    _config,
    _keys,
    configure,
    resume,
)
from resumable._cli.exitcodes import ExitCode
from resumable.stores import Codec, open_store
from resumable.stores.redis import RedisStore
from resumable.testing import SimulatedCrash, crash_after

SIGNED_TAG = b"s"  # the codec's tag of a signed blob (resumable/stores/codec.py)
KEY = "file-key-0123456789abcdef0123456789"


@pytest.fixture(autouse=True)
def _no_configured_key(monkeypatch, tmp_path):
    """Nothing configured, and a per-user key directory of this test's own."""
    for name in (
        "RESUMABLE_SECRET_KEY",
        "RESUMABLE_SECRET_KEY_FILE",
        "RESUMABLE_SECRET_KEY_FALLBACKS",
        "RESUMABLE_ALLOW_UNSIGNED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RESUMABLE_KEY_DIR", str(tmp_path / "keys"))
    yield
    _config.reset()


def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "secret-key"


async def crashed_run(store, execution_id: str | None = None) -> str:
    """`carry.numbers` stopped after 3 checkpoints, its lease released."""
    execution_id = execution_id or uuid.uuid4().hex
    with crash_after(3), pytest.raises(SimulatedCrash) as crash:
        await carry.numbers.options(execution_id=execution_id, store=store)(6)
    await store.release(crash.value.lease)
    return execution_id


def stored_blobs(db_path: Path) -> list[bytes]:
    """Every codec blob of a SQLite store: arguments, results, checkpoints."""
    with closing(sqlite3.connect(db_path)) as db:
        blobs = [v for (v,) in db.execute("SELECT value FROM checkpoints")]
        for args, result in db.execute("SELECT args, result FROM executions"):
            blobs += [b for b in (args, result) if b is not None]
    return blobs


class TestSQLiteSignsWithTheUserKey:
    async def test_records_are_signed_without_configuration(self, tmp_path):
        store = SQLiteStore(tmp_path / "state.db")
        await crashed_run(store)
        await store.close()
        blobs = stored_blobs(tmp_path / "state.db")
        assert len(blobs) >= 3  # the arguments and the loop's records
        # Each signed on its own, or a loop header signed chained (format 4:
        # its MAC also covers the loop's delta records; tests/test_chained.py).
        assert all(blob[:1] in (SIGNED_TAG, b"c") for blob in blobs)
        assert any(blob[:1] == b"c" for blob in blobs)

    async def test_the_key_file_is_private_and_made_once(self, tmp_path):
        store = SQLiteStore(tmp_path / "state.db")
        await crashed_run(store)
        path = key_path(tmp_path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        key = path.read_text()
        assert len(key.strip()) == 43 and key.endswith("\n")
        _keys._user_keys.clear()  # as a new process: read again, not made again
        await crashed_run(store)
        assert path.read_text() == key
        await store.close()

    async def test_a_planted_pickle_is_refused_before_it_runs(self, tmp_path):
        db_path = tmp_path / "state.db"
        store = SQLiteStore(db_path)
        execution_id = await crashed_run(store)
        marker = tmp_path / "ran"
        planted = b"p" + pickle.dumps(Planted(marker))
        with closing(sqlite3.connect(db_path)) as db, db:
            db.execute("UPDATE checkpoints SET value = ?", (planted,))
            db.execute("UPDATE executions SET args = ?", (planted,))
        with pytest.raises(CorruptCheckpoint):
            await resume(execution_id, store=store)
        assert not marker.exists()
        await store.close()
        url = f"sqlite:///{db_path}"
        for command in (("resume", execution_id), ("show", "--values", execution_id)):
            ran = cli(*command, store=url)
            assert ran.returncode == ExitCode.CORRUPT, (command, ran.stderr)
            assert "Traceback" not in ran.stderr
            assert not marker.exists(), command

    def test_a_second_process_resumes_what_the_first_wrote(self, tmp_path):
        url = f"sqlite:///{tmp_path / 'state.db'}"
        job = start_job(url, "two-processes", 12, 0.05)
        try:
            wait_for_loop(url, "two-processes", 3)  # this process reads with the key too
        finally:
            kill(job)
        path = key_path(tmp_path)
        key = path.read_text()
        resumed = cli("--json", "resume", "two-processes", store=url)
        assert resumed.returncode == 0, resumed.stderr
        total = sum(range(12))
        assert json.loads(resumed.stdout)["result"]["total"] == total
        assert path.read_text() == key
        assert all(blob[:1] == SIGNED_TAG for blob in stored_blobs(tmp_path / "state.db"))

    def test_processes_racing_to_create_the_key_share_one(self, tmp_path):
        """Several processes ask for the key at the same moment, while none
        exists: O_EXCL lets one write it, the others read that one."""
        script = (
            "import pathlib, sys, time\n"
            "from resumable import _keys\n"
            "here = pathlib.Path(sys.argv[1])\n"
            "(here / f'ready-{sys.argv[2]}').touch()\n"
            "while not (here / 'go').exists():\n"
            "    time.sleep(0.001)\n"
            "print(_keys.user_key().decode())\n"
        )
        count = 6
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(tmp_path), str(i)],
                env=cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(count)
        ]
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < count:
            assert time.monotonic() < deadline, "the racers never got ready"
            time.sleep(0.01)
        (tmp_path / "go").touch()
        keys = set()
        for racer in racers:
            out, err = racer.communicate(timeout=60)
            assert racer.returncode == 0, err
            keys.add(out.strip())
        assert keys == {key_path(tmp_path).read_text().strip()}

    def test_a_file_being_written_is_waited_for(self, tmp_path):
        path = key_path(tmp_path)
        path.parent.mkdir(mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

        def finish() -> None:
            time.sleep(0.2)
            path.write_text(KEY + "\n")

        writer = threading.Thread(target=finish)
        writer.start()
        try:
            assert _keys.user_key() == KEY.encode()
        finally:
            writer.join()

    def test_an_empty_file_is_refused(self, tmp_path, monkeypatch):
        monkeypatch.setattr(_keys, "_HALF_WRITTEN_WAIT", 0.05)
        path = key_path(tmp_path)
        path.parent.mkdir(mode=0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with pytest.raises(KeyFileError, match="it is empty") as caught:
            _keys.user_key()
        assert str(path) in str(caught.value)


class TestBadKeyFiles:
    """Any doubt about the key file is an error naming it: never unsigned."""

    @pytest.mark.parametrize("mode", [0o620, 0o602, 0o640, 0o604])
    async def test_a_key_file_open_to_others_is_refused(self, tmp_path, mode):
        store = SQLiteStore(tmp_path / "state.db")
        execution_id = await crashed_run(store)  # signed with the key file, made now
        path = key_path(tmp_path)
        path.chmod(mode)
        _keys._user_keys.clear()  # as a new process would, read it again
        with pytest.raises(KeyFileError, match=r"chmod 600") as caught:
            await carry.numbers.options(store=store)(3)
        assert str(path) in str(caught.value)
        assert stat.filemode(stat.S_IFREG | mode) in str(caught.value)
        assert len(await store.list()) == 1  # refused before anything was written
        with pytest.raises(KeyFileError):
            await resume(execution_id, store=store)
        await store.close()
        for command in (("resume", execution_id), ("show", execution_id)):
            ran = cli(*command, store=f"sqlite:///{tmp_path / 'state.db'}")
            assert ran.returncode == ExitCode.NO_SECRET_KEY, (command, ran.stderr)
            assert str(path) in ran.stderr
            assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr

    def test_a_directory_others_can_write_is_refused(self, tmp_path):
        directory = tmp_path / "keys"
        directory.mkdir()
        directory.chmod(0o770)
        with pytest.raises(KeyFileError, match="chmod 700") as caught:
            _keys.user_key()
        assert str(directory) in str(caught.value)
        assert not (directory / "secret-key").exists()

    @pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
    def test_a_key_file_of_another_user_is_refused(self, tmp_path):
        path = key_path(tmp_path)
        path.parent.mkdir(mode=0o700)
        path.write_text(KEY + "\n")
        path.chmod(0o600)
        os.chown(path, 12345, 12345)
        with pytest.raises(KeyFileError, match="owned by user id 12345") as caught:
            _keys.user_key()
        assert str(path) in str(caught.value)


class TestSecretKeyFile:
    async def test_the_file_named_by_the_environment_signs(self, tmp_path, monkeypatch):
        path = tmp_path / "deploy" / "resumable.key"
        made = cli("keygen", "--file", str(path))
        assert made.returncode == 0, made.stderr
        monkeypatch.setenv("RESUMABLE_SECRET_KEY_FILE", str(path))
        store = SQLiteStore(tmp_path / "state.db")
        execution_id = await crashed_run(store)
        assert await resume(execution_id, store=store) == await carry.numbers.options(
            store="memory://"
        )(6)
        await store.close()
        key = path.read_text().strip().encode()
        reader = SQLiteStore(tmp_path / "state.db")
        try:
            args = (await reader.get(execution_id)).args
        finally:
            await reader.close()  # 3.13 warns of an unclosed sqlite3 connection
        assert Codec(secret_key=key).loads(args, execution_id=execution_id, key="arguments")
        assert all(blob[:1] == SIGNED_TAG for blob in stored_blobs(tmp_path / "state.db"))
        assert not key_path(tmp_path).exists()  # the per-user key was not needed
        # The command line resolves the key the same way.
        shown = cli("show", "--values", execution_id, store=f"sqlite:///{tmp_path / 'state.db'}")
        assert shown.returncode == 0, shown.stderr

    @pytest.mark.parametrize(
        ("content", "message"), [(None, "cannot read it"), ("  \n", "it is empty")]
    )
    async def test_an_unusable_file_is_refused(self, tmp_path, monkeypatch, content, message):
        path = tmp_path / "resumable.key"
        if content is not None:
            path.write_text(content)
        monkeypatch.setenv("RESUMABLE_SECRET_KEY_FILE", str(path))
        store = SQLiteStore(tmp_path / "state.db")
        with pytest.raises(KeyFileError, match=message) as caught:
            await carry.numbers.options(store=store)(3)
        assert str(path) in str(caught.value)
        await store.close()

    def test_a_file_others_can_write_is_refused(self, tmp_path, monkeypatch):
        path = tmp_path / "resumable.key"
        path.write_text(KEY + "\n")
        path.chmod(0o666)
        monkeypatch.setenv("RESUMABLE_SECRET_KEY_FILE", str(path))
        with pytest.raises(KeyFileError, match="writable by other users"):
            _config.configured_key()

    def test_the_environment_key_comes_before_the_file(self, tmp_path, monkeypatch):
        monkeypatch.setenv("RESUMABLE_SECRET_KEY_FILE", str(tmp_path / "missing"))
        monkeypatch.setenv("RESUMABLE_SECRET_KEY", "from-env")
        assert _config.configured_key() == b"from-env"
        configure(secret_key="from-configure")
        assert _config.configured_key() == b"from-configure"


class TestRedisNeedsAKey:
    async def test_no_key_is_refused_before_anything_is_written(self, redis_url, monkeypatch):
        monkeypatch.delenv("RESUMABLE_SECRET_KEY", raising=False)  # the suite's Redis key
        url = with_prefix(redis_url)
        store = open_store(url)
        try:
            with pytest.raises(SecretKeyRequired) as caught:
                await carry.numbers.options(store=store)(3)
            message = str(caught.value)
            assert store.url in message
            assert "resumable keygen" in message and "RESUMABLE_SECRET_KEY_FILE" in message
            assert "RESUMABLE_ALLOW_UNSIGNED=1" in message
            assert await store.list() == []
            configure(secret_key="the-key-of-the-run")
            execution_id = await crashed_run(store)
        finally:
            await store.close()
        for command in (("resume", execution_id), ("show", execution_id)):
            ran = cli(*command, store=url)
            assert ran.returncode == ExitCode.NO_SECRET_KEY == 11, (command, ran.stderr)
            lines = ran.stderr.strip().splitlines()
            assert len(lines) == 1 and "no secret key" in lines[0], ran.stderr
        ran = cli("resume", execution_id, store=url, env=cli_env(RESUMABLE_SECRET_KEY="wrong"))
        assert ran.returncode == ExitCode.CORRUPT, ran.stderr  # a key, but not the run's
        ran = cli(
            "resume",
            execution_id,
            store=url,
            env=cli_env(RESUMABLE_SECRET_KEY="the-key-of-the-run"),
        )
        assert ran.returncode == 0, ran.stderr

    async def test_a_store_without_a_scope_counts_as_shared(self):
        class Mine:
            """A user's own store (a wrapper here): nothing says who writes it."""

            def __init__(self) -> None:
                self.inner = MemoryStore()

            def __getattr__(self, name: str) -> object:
                if name == "key_scope":
                    raise AttributeError(name)
                return getattr(self.inner, name)

        with pytest.raises(SecretKeyRequired):
            await carry.numbers.options(store=Mine())(3)

    async def test_the_opt_out_warns_once_per_store(self, redis_url, monkeypatch):
        monkeypatch.delenv("RESUMABLE_SECRET_KEY", raising=False)
        configure(allow_unsigned=True)
        store = RedisStore(redis_url, prefix=f"resumable-test-{uuid.uuid4().hex}")
        try:
            with capture_logs() as logs:
                first = await carry.numbers.options(store=store)(4)
                second = await carry.numbers.options(store=store)(4)
            assert first == second
            warnings = [e for e in logs if e["log_level"] == "warning"]
            assert len(warnings) == 1, warnings
            assert warnings[0]["event"] == "records are not signed"
            assert warnings[0]["store"] == store.url
            assert "run code" in warnings[0]["risk"]
            (record, _) = await store.list()
            assert record.args[:1] != SIGNED_TAG
        finally:
            await store.close()

    async def test_the_opt_out_from_the_environment(self, redis_url, monkeypatch):
        monkeypatch.delenv("RESUMABLE_SECRET_KEY", raising=False)
        monkeypatch.setenv("RESUMABLE_ALLOW_UNSIGNED", "1")
        url = with_prefix(redis_url)
        store = open_store(url)
        try:
            execution_id = await crashed_run(store)
            (record,) = await store.list()
            assert record.args[:1] != SIGNED_TAG
        finally:
            await store.close()
        ran = cli("resume", execution_id, store=url)
        assert ran.returncode == 0, ran.stderr
        assert ran.stderr.count("records are not signed") == 1, ran.stderr

    async def test_with_a_key_the_opt_out_changes_nothing(self, redis_url, monkeypatch):
        configure(secret_key="a-configured-key", allow_unsigned=True)
        store = RedisStore(redis_url, prefix=f"resumable-test-{uuid.uuid4().hex}")
        try:
            with capture_logs() as logs:
                await carry.numbers.options(store=store)(3)
            assert not [e for e in logs if e["log_level"] == "warning"]
            (record,) = await store.list()
            assert record.args[:1] == SIGNED_TAG
        finally:
            await store.close()

    def test_a_bad_opt_out_value_is_refused(self, monkeypatch):
        monkeypatch.setenv("RESUMABLE_ALLOW_UNSIGNED", "maybe")
        with pytest.raises(ValueError, match="RESUMABLE_ALLOW_UNSIGNED"):
            _config.allow_unsigned()


class TestMemoryStaysUnsigned:
    async def test_no_key_no_signature(self, tmp_path):
        store = MemoryStore()
        execution_id = await crashed_run(store)
        blobs = [*(await store.load(execution_id)).values(), (await store.get(execution_id)).args]
        assert blobs and all(blob[:1] != SIGNED_TAG for blob in blobs)
        assert not _config.codec_for(store).signed
        assert not key_path(tmp_path).exists()

    async def test_a_configured_key_still_signs(self):
        configure(secret_key="a-configured-key")
        assert _config.codec_for(MemoryStore()).signed


class TestWhereTheKeyIs:
    def test_help_names_the_key_file_without_making_it(self, tmp_path):
        shown = cli("--help")
        assert shown.returncode == 0
        assert str(key_path(tmp_path)) in shown.stdout.replace("\n", "")
        assert not key_path(tmp_path).parent.exists()

    def test_keygen_help_names_the_key_file_variable(self):
        shown = cli("keygen", "--help")
        assert "RESUMABLE_SECRET_KEY_FILE" in shown.stdout

    def test_the_default_directory_follows_xdg(self, monkeypatch, tmp_path):
        monkeypatch.delenv("RESUMABLE_KEY_DIR")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        assert _keys.default_key_path() == tmp_path / "xdg" / "resumable" / "secret-key"
        monkeypatch.delenv("XDG_CONFIG_HOME")
        assert _keys.default_key_path() == Path.home() / ".config" / "resumable" / "secret-key"
