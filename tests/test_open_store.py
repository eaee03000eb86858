"""open_store picks a store from a URL; redact_url keeps passwords out of messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resumable.stores import MemoryStore, SQLiteStore, open_store, redact_url
from resumable.stores.url import parse_store_url, sqlite_url


@pytest.fixture(name="opened")
async def _opened():
    """Collects stores to close after the test."""
    stores: list = []
    yield stores
    for store in stores:
        await store.close()


def sqlite_path(url: str, opened: list) -> Path:
    store = open_store(url)
    opened.append(store)
    assert isinstance(store, SQLiteStore)
    return Path(store.path)


class TestMemory:
    """memory:// opens a new, empty MemoryStore each time."""

    def test_memory(self):
        one, two = open_store("memory://"), open_store("memory://")
        assert isinstance(one, MemoryStore)
        assert one is not two
        assert one.url == "memory://"

    def test_options_are_refused(self):
        with pytest.raises(ValueError, match="unknown option"):
            open_store("memory://?synchronous=full")


class TestSQLitePaths:
    """SQLite URLs follow SQLAlchemy: three slashes then the path as written."""

    @pytest.fixture(autouse=True)
    def _in_tmp(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)

    @pytest.mark.parametrize(
        ("url", "relative"),
        [
            ("sqlite:///state.db", "state.db"),
            ("sqlite:///.resumable/state.db", ".resumable/state.db"),
            ("sqlite://state.db", "state.db"),
            ("sqlite://dir/state.db", "dir/state.db"),
            ("foo/state.db", "foo/state.db"),
            ("sqlite:///with%20space.db", "with space.db"),
        ],
    )
    def test_relative_to_the_working_directory(self, url, relative, tmp_path, opened):
        path = sqlite_path(url, opened)
        assert path == tmp_path / relative
        assert path.is_file()

    def test_four_slashes_are_absolute(self, tmp_path, opened):
        target = tmp_path / "abs" / "state.db"
        assert sqlite_path(f"sqlite:///{target}", opened) == target
        assert sqlite_path(str(target), opened) == target

    def test_store_url_reopens_the_same_file(self, tmp_path, opened):
        for name in ("plain.db", "odd ?#% name.db"):
            first = SQLiteStore(tmp_path / name)
            opened.append(first)
            assert sqlite_path(first.url, opened) == tmp_path / name
        assert sqlite_url(tmp_path / "x.db") == f"sqlite:///{tmp_path}/x.db"

    def test_no_path(self):
        with pytest.raises(ValueError, match="names no SQLite file"):
            open_store("sqlite://")


class TestSQLiteOptions:
    """Query options configure the SQLite store; unknown ones are refused."""

    def test_synchronous_full(self, tmp_path, opened):
        store = open_store(f"sqlite:///{tmp_path}/a.db?synchronous=FULL")
        opened.append(store)
        assert isinstance(store, SQLiteStore)
        assert store.synchronous == "full"

    def test_max_record_bytes_and_busy_timeout(self, tmp_path, opened):
        store = open_store(f"sqlite:///{tmp_path}/a.db?max_record_bytes=10&busy_timeout=2.5")
        opened.append(store)
        assert isinstance(store, SQLiteStore)
        assert (store.max_record_bytes, store.busy_timeout) == (10, 2.5)

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("synchronous=off", "synchronous='off'"),
            ("max_record_bytes=big", "max_record_bytes='big' is not a number"),
            ("journal=delete", "unknown option"),
        ],
    )
    def test_bad_options(self, tmp_path, query, message):
        with pytest.raises(ValueError, match=message):
            open_store(f"sqlite:///{tmp_path}/a.db?{query}")
        assert not (tmp_path / "a.db").exists()


class TestOtherSchemes:
    """Unknown schemes are refused with the supported ones; secrets never shown."""

    def test_unknown_scheme(self):
        with pytest.raises(ValueError, match="memory://, sqlite://, redis://") as info:
            open_store("ftp://user:hunter2@host/x")
        assert "hunter2" not in str(info.value)
        assert "ftp://user:***@host/x" in str(info.value)

    def test_redis_without_the_redis_package(self):
        """Without the `redis` extra, a redis:// URL says what to install."""
        probe = (
            "import sys\n"
            "sys.modules['redis'] = None  # as if the redis extra were not installed\n"
            "from resumable.stores import open_store\n"
            "try:\n"
            "    open_store('redis://user:hunter2@localhost:6379/0')\n"
            "except ValueError as exc:\n"
            "    print(exc)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        assert "pip install 'resumable-runtime[redis]'" in out
        assert "hunter2" not in out

    def test_empty(self):
        with pytest.raises(ValueError, match="non-empty"):
            open_store("  ")


class TestRedact:
    """redact_url replaces passwords, and nothing else."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
            ("rediss://:secret@host", "rediss://:***@host"),
            ("redis://host/0?password=secret&db=1", "redis://host/0?password=***&db=1"),
            ("redis://user@host", "redis://user@host"),
            ("redis://host:6379/0", "redis://host:6379/0"),
            ("sqlite:///state.db", "sqlite:///state.db"),
            ("redis://u:secret@[::1", "redis://u:***@[::1"),  # unparseable: patterns
        ],
    )
    def test_redact(self, url, expected):
        assert redact_url(url) == expected


class TestParse:
    """parse_store_url splits scheme, path and options."""

    def test_parts(self):
        parsed = parse_store_url("SQLITE:///a.db?synchronous=full")
        assert (parsed.scheme, parsed.path, dict(parsed.options)) == (
            "sqlite",
            "a.db",
            {"synchronous": "full"},
        )
        assert parse_store_url("redis://h/0?db=1").options == {"db": "1"}
