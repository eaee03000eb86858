"""Guarantee §3.6: a corrupt or tampered record is refused, naming the
execution and the key, before anything is unpickled."""

from __future__ import annotations

import pickle
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from jobs import carry
from support.clirun import cli, cli_env
from support.planted import Planted

from resumable import CorruptCheckpoint, SQLiteStore, _config, configure, resume, status
from resumable.testing import SimulatedCrash, crash_after


@pytest.fixture(name="signed")
def _signed():
    configure(secret_key="test-secret")
    yield
    _config.reset()


async def crashed_run(store: SQLiteStore) -> str:
    execution_id = uuid.uuid4().hex
    with crash_after(3), pytest.raises(SimulatedCrash) as crash:
        await carry.numbers.options(execution_id=execution_id, store=store)(6)
    await store.release(crash.value.lease)
    return execution_id


class TestTamperedCheckpoint:
    """With a secret key, a modified record stops the resume."""

    @pytest.mark.usefixtures("signed")
    async def test_flipped_byte_is_refused(self, tmp_path: Path):
        store = SQLiteStore(tmp_path / "state.db")
        execution_id = await crashed_run(store)
        # closing(): a Connection's own `with` commits but does not close it.
        with closing(sqlite3.connect(tmp_path / "state.db")) as db, db:
            key = "#0"  # the loop's checkpoint header
            (value,) = db.execute(
                "SELECT value FROM checkpoints WHERE execution_id = ? AND key = ?",
                (execution_id, key),
            ).fetchone()
            tampered = value[:-1] + bytes([value[-1] ^ 1])
            db.execute(
                "UPDATE checkpoints SET value = ? WHERE execution_id = ? AND key = ?",
                (tampered, execution_id, key),
            )
        with pytest.raises(CorruptCheckpoint) as caught:
            await resume(execution_id, store=store)
        assert caught.value.execution_id == execution_id
        assert caught.value.key == key
        await store.close()

    async def test_garbage_without_a_key_is_refused(self, tmp_path: Path):
        store = SQLiteStore(tmp_path / "state.db")
        execution_id = await crashed_run(store)
        # closing(): a Connection's own `with` commits but does not close it.
        with closing(sqlite3.connect(tmp_path / "state.db")) as db, db:
            db.execute(
                "UPDATE checkpoints SET value = ? WHERE execution_id = ?",
                (b"\xff\x00junk", execution_id),
            )
        with pytest.raises(CorruptCheckpoint):
            await resume(execution_id, store=store)
        await store.close()

    @pytest.mark.usefixtures("signed")
    async def test_record_moved_from_another_execution_is_refused(self, tmp_path: Path):
        """A validly signed record copied over another execution's is refused."""
        store = SQLiteStore(tmp_path / "state.db")
        first = await crashed_run(store)
        second = await crashed_run(store)
        with closing(sqlite3.connect(tmp_path / "state.db")) as db, db:
            (value,) = db.execute(
                "SELECT value FROM checkpoints WHERE execution_id = ? AND key = '#0'", (first,)
            ).fetchone()
            db.execute(
                "UPDATE checkpoints SET value = ? WHERE execution_id = ? AND key = '#0'",
                (value, second),
            )
        with pytest.raises(CorruptCheckpoint, match="moved from another record") as caught:
            await resume(second, store=store)
        assert caught.value.execution_id == second
        await store.close()


class TestReadersThatRunNoCode:
    """`status()`, `show`, `list` and `gc` read headers only, and a header is
    plain data: a pickle planted in one is refused, never unpickled, with or
    without a key (the codec's `loads_plain`)."""

    @pytest.mark.parametrize("keyed", [False, True])
    async def test_a_pickle_planted_in_every_header_never_runs(self, tmp_path, keyed):
        if keyed:
            configure(secret_key="test-secret")
        try:
            store = SQLiteStore(tmp_path / "state.db")
            execution_id = await crashed_run(store)
            marker = tmp_path / "ran"
            planted = b"p" + pickle.dumps(Planted(marker))
            with closing(sqlite3.connect(tmp_path / "state.db")) as db, db:
                keys = [k for (k,) in db.execute("SELECT key FROM checkpoints")]
                db.execute("UPDATE checkpoints SET value = ?", (planted,))
            assert "#0" in keys
            found = await status(execution_id, store=store)
            assert found.progress == ()  # the planted headers are unreadable, not run
            assert not marker.exists()
            await store.close()
            url = f"sqlite:///{tmp_path / 'state.db'}"
            env = cli_env(**({"RESUMABLE_SECRET_KEY": "test-secret"} if keyed else {}))
            for command in (
                ("show", execution_id),
                ("--json", "show", execution_id),
                ("list",),
                ("--json", "list"),
                ("gc", "--older-than", "0s", "--compact", "--dry-run"),
            ):
                ran = cli(*command, store=url, env=env)
                assert "Traceback" not in ran.stderr, (command, ran.stderr)
                assert not marker.exists(), command
        finally:
            _config.reset()
