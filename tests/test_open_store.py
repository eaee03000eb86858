"""open_store picks a store from a URL; redact_url keeps passwords out of messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from resumable.stores import (
    MemoryStore,
    SQLiteStore,
    StoreURL,
    open_store,
    redact_url,
    register_store,
)
from resumable.stores.registry import schemes
from resumable.stores.url import parse_store_url, sqlite_url


@pytest.fixture(name="opened")
async def _opened():
    """Collects stores to close after the test."""
    stores: list = []
    yield stores
    for store in stores:
        await store.close()


def python(program: str, **env: str) -> str:
    """The stdout of `program` run by a fresh interpreter (with `env` added)."""
    return subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout


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
        out = python(probe)
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


class TestLazyImports:
    """`import resumable` loads no store's module, and no pytest, until used."""

    def test_import_resumable_loads_no_store(self):
        probe = (
            "import sys, resumable\n"
            "loaded = [m for m in ('resumable.stores.sqlite', 'resumable.stores.memory',\n"
            "          'resumable.stores.redis', 'redis', 'pytest') if m in sys.modules]\n"
            "print(loaded)\n"
            "from resumable import MemoryStore, SQLiteStore\n"
            "from resumable.stores import open_store\n"
            "open_store('memory://')\n"
            "print(SQLiteStore.__module__, MemoryStore.__module__,\n"
            "      'resumable.stores.sqlite' in sys.modules,\n"
            "      'resumable.stores.redis' in sys.modules)\n"
        )
        out = python(probe)
        assert out.splitlines() == [
            "[]",
            "resumable.stores.sqlite resumable.stores.memory True False",
        ]

    def test_an_unknown_name_is_still_an_attribute_error(self):
        import resumable
        import resumable.stores

        with pytest.raises(AttributeError, match="RedisStore"):
            _ = resumable.stores.RedisStore
        with pytest.raises(AttributeError, match="Nope"):
            _ = resumable.Nope


class _NotAStore:
    def __init__(self, parsed: StoreURL) -> None:
        self.parsed = parsed


class TestRegistry:
    """Schemes map to factories: objects, dotted paths, or entry points."""

    def test_built_in_schemes_first(self):
        assert schemes()[:4] == ["memory", "sqlite", "redis", "rediss"]

    def test_a_dotted_path_is_imported_at_the_first_open(self, opened):
        register_store("test-dotted", "resumable.stores.memory:MemoryStore")
        store = open_store("test-dotted://?max_record_bytes=7")
        assert isinstance(store, MemoryStore)
        assert store.max_record_bytes == 7
        assert "test-dotted" in schemes()

    def test_a_plain_callable_gets_the_parsed_url(self):
        seen: list[StoreURL] = []

        def factory(parsed: StoreURL) -> MemoryStore:
            seen.append(parsed)
            return MemoryStore()

        register_store("test-callable", factory)
        assert isinstance(open_store("test-callable://host/x?a=1"), MemoryStore)
        assert (seen[0].scheme, dict(seen[0].options)) == ("test-callable", {"a": "1"})

    def test_a_factory_that_returns_no_store_is_refused(self):
        register_store("test-notastore", _NotAStore)
        with pytest.raises(TypeError, match=r"_NotAStore, which is not a resumable\.stores\.Store"):
            open_store("test-notastore://")

    @pytest.mark.parametrize(
        ("scheme", "factory", "error", "message"),
        [
            ("Bad", MemoryStore, ValueError, "lower-case URL scheme"),
            ("x://", MemoryStore, ValueError, "no '://'"),
            ("", MemoryStore, ValueError, "scheme=''"),
            ("test-bad", "no.colon", ValueError, "expected 'package.module:StoreClass'"),
            ("test-bad", 42, TypeError, "factory=42"),
            ("memory", "somewhere.else:Store", ValueError, "registered already"),
        ],
    )
    def test_bad_registrations(self, scheme, factory, error, message):
        with pytest.raises(error, match=message):
            register_store(scheme, factory)

    def test_a_path_that_does_not_import_says_so(self):
        register_store("test-missing", "no_such_module_here:Store")
        with pytest.raises(ValueError, match="needs no_such_module_here, which failed") as info:
            open_store("test-missing://user:hunter2@host")
        assert "hunter2" not in str(info.value)
        register_store("test-noattr", "resumable.stores.memory:NoSuchStore")
        with pytest.raises(ValueError, match="has no NoSuchStore"):
            open_store("test-noattr://")

    def test_an_entry_point_registers_a_scheme(self, tmp_path):
        """A package's metadata names its store; nothing imports it before."""
        (tmp_path / "fakestore.py").write_text(
            "from resumable.stores import MemoryStore\nclass FakeStore(MemoryStore):\n    pass\n"
        )
        info = tmp_path / "fakestore-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakestore\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("[resumable.stores]\nfake = fakestore:FakeStore\n")
        probe = (
            "import sys\n"
            "from resumable.stores import open_store\n"
            "print('fakestore' in sys.modules)\n"
            "print(type(open_store('fake://')).__name__)\n"
        )
        out = python(probe, PYTHONPATH=str(tmp_path))
        assert out.splitlines() == ["False", "FakeStore"]


class TestOptions:
    """Every store reads its options through StoreURL: same checks, same words."""

    def test_memory_takes_max_record_bytes(self):
        store = open_store("memory://?max_record_bytes=12")
        assert isinstance(store, MemoryStore)
        assert store.max_record_bytes == 12

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("memory://?max_record_bytes=0", "max_record_bytes=0: expected a positive size"),
            ("memory://?max_record_bytes=1.5", "max_record_bytes='1.5' is not a number"),
            ("sqlite:///{tmp}/a.db?busy_timeout=soon", "busy_timeout='soon' is not a number"),
            ("sqlite:///{tmp}/a.db?busy_timeout=0", "busy_timeout=0.0: expected a positive"),
            ("sqlite:///{tmp}/a.db?Synchronous=full", r"unknown option\(s\) Synchronous"),
        ],
    )
    def test_bad_values(self, url, message, tmp_path):
        with pytest.raises(ValueError, match=message):
            open_store(url.format(tmp=tmp_path))

    def test_without_drops_only_the_named_options(self):
        parsed = parse_store_url("redis://:pw@h:1/0?prefix=p&socket_timeout=2&unavailable_after=3")
        assert parsed.without(("prefix", "unavailable_after")) == (
            "redis://:pw@h:1/0?socket_timeout=2"
        )

    def test_choice_names_the_choices(self):
        parsed = parse_store_url("sqlite:///a.db?synchronous=off")
        with pytest.raises(ValueError, match="synchronous='off', expected 'normal' or 'full'"):
            parsed.choice("synchronous", ("normal", "full"), "normal")
