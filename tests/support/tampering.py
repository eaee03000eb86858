"""Shared by test_planted_pickles and test_flipped_bytes: the configuration
every process runs in, stores holding `jobs.tampered`'s executions (built
once, copied per case), writing over one stored blob through the store's
own files or server, and running every reader on the result.

The tests judge behaviour, never byte layouts: a place is an execution row
column (args, result, error) or a checkpoint record key, and what is written
there is either a pickle that would create a marker file, or the stored
bytes with one byte flipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from jobs import tampered

import resumable
from resumable import ResumableError, _config
from resumable.stores import open_store
from support.clirun import cli_env
from support.crashing import TESTS
from support.redis_server import fresh_prefix, with_prefix

# -- the configuration ---------------------------------------------------------

# The configuration every process of these tests runs with (the pytest
# worker's library calls, the job that builds the stores, the CLI): the
# default, the least a user configures. On SQLite that is nothing at all:
# records are signed with the per-user key (here under the suite's
# RESUMABLE_KEY_DIR, which every process inherits). On Redis the default
# refuses to run without a key, so the least configuration is a key.
REDIS_CONFIGURATION: dict[str, str] = {"RESUMABLE_SECRET_KEY": "tamper-test-key"}
# Taken out of every process's environment before the configuration goes in.
_KEY_VARIABLES = (
    "RESUMABLE_SECRET_KEY",
    "RESUMABLE_SECRET_KEY_FALLBACKS",
    "RESUMABLE_SECRET_KEY_FILE",
    "RESUMABLE_ALLOW_UNSIGNED",
)


def configuration(url: str) -> dict[str, str]:
    """The environment variables a process using the store at `url` gets."""
    shared = url.startswith(("redis://", "rediss://", "unix://"))
    return dict(REDIS_CONFIGURATION) if shared else {}


def process_env(url: str) -> dict[str, str]:
    """The environment of a subprocess: the tests on the path, the configuration."""
    env = cli_env()
    for name in _KEY_VARIABLES:
        env.pop(name, None)
    env.update(configuration(url))
    return env


@contextlib.contextmanager
def configured(url: str) -> Iterator[None]:
    """This process in the configuration for `url` (for a test's library calls)."""
    wanted = configuration(url)
    names = (*wanted, *_KEY_VARIABLES)
    saved = {name: os.environ.get(name) for name in names}
    for name in _KEY_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(wanted)
    _config.reset()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _config.reset()


def plain_header(data: bytes) -> Any:
    """A stored header decoded as plain data, whatever signs it: for tests
    that need its fields to know where to plant or flip, never to trust."""
    from resumable.stores.codec import Codec

    body = data[33:] if data[:1] == b"s" else data[17:] if data[:1] == b"c" else data
    return Codec().loads_plain(body)


# -- places --------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a blob is stored: a column of an execution's row ("args",
    "result", "error") or one of its checkpoint records (by key)."""

    execution: str  # which of tampered.IDS, or "child" (the killed one's child)
    column: str | None = None
    key: str | None = None

    def describe(self) -> str:
        return f"{self.execution}:{self.column or self.key}"


CHILD = "child"
# Where a reader starts from: the execution whose resume reads the place.
TARGETS = {"killed": "killed", CHILD: "killed", "completed": "completed", "failed": "failed"}


def target_of(ids: dict[str, str], place: Place) -> tuple[str, str, tuple[str, str]]:
    """For a changed `place`: the execution its readers read (TARGETS), that
    execution's id, and the ids an honest error may name (the changed
    execution's or the target's)."""
    target = TARGETS[place.execution]
    return target, ids[target], (ids[place.execution], ids[target])


# What each place name of the tests means, by the job's program order
# (tests/jobs/tampered.py): (execution, column) or (execution, key pattern,
# "first" or "last" of the keys it matches, in store order by sequence).
PLACES: dict[str, tuple[str, ...]] = {
    "args": ("killed", "column", "args"),
    "result": ("completed", "column", "result"),
    "error": ("failed", "column", "error"),
    "child-args": (CHILD, "column", "args"),
    "child-result": (CHILD, "column", "result"),
    "journaled-now": ("killed", "key", r"#0"),
    "journaled-uuid": ("killed", "key", r"#1"),
    "step": ("killed", "key", r"#2"),
    "memo": ("killed", "key", r"memo:.*"),
    "amap-header": ("killed", "key", r"#4"),
    "amap-item": ("killed", "key", r"#4=1"),
    "agather-header": ("killed", "key", r"#5"),
    "agather-item": ("killed", "key", r"#5=1"),  # a pickled Box
    "child-record": ("killed", "key", r"#6"),
    "loop-header": ("killed", "key", r"#7"),
    "loop-layout": ("killed", "key", r"#7@"),
    "list-base": ("killed", "key", r"#7\+log\.0"),
    "list-chunk": ("killed", "key", r"#7\+log~\d+"),
    "list-delta": ("killed", "key", r"#7\+log\.[1-9]\d*", "last"),
    "dict-base": ("killed", "key", r"#7\+table\.0"),
    "dict-chunk": ("killed", "key", r"#7\+table~\d+"),
    "dict-delta": ("killed", "key", r"#7\+table\.[1-9]\d*", "last"),
    "set-base": ("killed", "key", r"#7\+seen\.0"),
    "set-delta": ("killed", "key", r"#7\+seen\.[1-9]\d*", "last"),
    "inflight-step": ("killed", "key", r"#7\[\d+\]/#0"),
}


def _seq(key: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", key))


# -- stores --------------------------------------------------------------------


class StoreCopy:
    """One copy of the built store, to tamper with and read."""

    url: str
    ids: dict[str, str]

    def execution_id(self, which: str) -> str:
        return self.ids[which]

    def keys(self, which: str) -> list[str]:
        raise NotImplementedError

    def read(self, place: Place) -> bytes:
        raise NotImplementedError

    def write(self, place: Place, value: bytes) -> None:
        raise NotImplementedError

    def resolve(self, name: str) -> Place:
        which, how, what, *order = PLACES[name]
        if how == "column":
            return Place(which, column=what)
        found = sorted((k for k in self.keys(which) if re.fullmatch(what, k)), key=_seq)
        assert found, f"the built execution has no record {what!r}: {sorted(self.keys(which))}"
        return Place(which, key=found[-1] if order == ["last"] else found[0])


class SQLiteCopy(StoreCopy):
    def __init__(self, path: Path, ids: dict[str, str]) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self.ids = ids

    def _db(self) -> contextlib.closing[sqlite3.Connection]:
        return contextlib.closing(sqlite3.connect(self.path))

    def keys(self, which: str) -> list[str]:
        with self._db() as db:
            rows = db.execute(
                "SELECT key FROM checkpoints WHERE execution_id = ?", (self.ids[which],)
            )
            return [key for (key,) in rows]

    def read(self, place: Place) -> bytes:
        with self._db() as db:
            if place.column is not None:
                row = db.execute(
                    f"SELECT {place.column} FROM executions WHERE id = ?",
                    (self.ids[place.execution],),
                ).fetchone()
            else:
                row = db.execute(
                    "SELECT value FROM checkpoints WHERE execution_id = ? AND key = ?",
                    (self.ids[place.execution], place.key),
                ).fetchone()
        assert row is not None and row[0] is not None, place
        return bytes(row[0])

    def write(self, place: Place, value: bytes) -> None:
        with self._db() as db, db:
            if place.column is not None:
                changed = db.execute(
                    f"UPDATE executions SET {place.column} = ? WHERE id = ?",
                    (value, self.ids[place.execution]),
                ).rowcount
            else:
                changed = db.execute(
                    "UPDATE checkpoints SET value = ? WHERE execution_id = ? AND key = ?",
                    (value, self.ids[place.execution], place.key),
                ).rowcount
        assert changed == 1, place


class RedisCopy(StoreCopy):
    def __init__(self, server: str, prefix: str, ids: dict[str, str]) -> None:
        self.server = server
        self.prefix = prefix
        self.url = with_prefix(server, prefix)
        self.ids = ids

    def _hash(self, place_or_which: Place | str) -> tuple[str, str | None]:
        if isinstance(place_or_which, str):
            return f"{{{self.prefix}:{self.ids[place_or_which]}}}:checkpoints", None
        place = place_or_which
        tag = f"{{{self.prefix}:{self.ids[place.execution]}}}"
        if place.column is not None:
            return f"{tag}:record", place.column
        return f"{tag}:checkpoints", place.key

    def keys(self, which: str) -> list[str]:
        with _client(self.server) as client:
            return [k.decode() for k in client.hkeys(self._hash(which)[0])]

    def read(self, place: Place) -> bytes:
        name, field = self._hash(place)
        with _client(self.server) as client:
            value = client.hget(name, field)
        assert value, place
        return bytes(value)

    def write(self, place: Place, value: bytes) -> None:
        name, field = self._hash(place)
        with _client(self.server) as client:
            assert client.hexists(name, field), place
            client.hset(name, field, value)


@contextlib.contextmanager
def _client(server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server)
    try:
        yield client
    finally:
        client.close()


_BUILD = "import sys; from jobs import tampered; tampered.build(sys.argv[1])"


def _build(url: str) -> dict[str, str]:
    """Run jobs.tampered.build in a process of its own, which SIGKILLs itself."""
    # The carry audit (on in the whole suite) checks each of the loop's
    # 1000+ checkpoints, some 20 s here; the build is not what is tested.
    env = {**process_env(url), "RESUMABLE_AUDIT_CARRY": "0"}
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from jobs import tampered; tampered.build(sys.argv[1])",
            url,
        ],
        env=env,
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == -9, (ran.returncode, ran.stdout, ran.stderr)
    (line,) = [line for line in ran.stdout.splitlines() if line.startswith("{")]
    ids = dict(json.loads(line))
    ids[CHILD] = f"{ids['killed']}/6"  # the id the library derives for #6
    return ids


class Base:
    """The built store of one kind, copied for each case."""

    def copy(self, directory: Path) -> StoreCopy:
        raise NotImplementedError


class SQLiteBase(Base):
    def __init__(self, directory: Path) -> None:
        path = directory / "base.db"
        self.ids = _build(f"sqlite:///{path}")
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # all in one file: copied whole
        self.path = path

    def copy(self, directory: Path) -> SQLiteCopy:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "state.db"
        shutil.copyfile(self.path, target)
        return SQLiteCopy(target, self.ids)


class RedisBase(Base):
    def __init__(self, server: str) -> None:
        self.server = server
        self.prefix = fresh_prefix()
        self.ids = _build(with_prefix(server, self.prefix))

    def copy(self, directory: Path) -> RedisCopy:
        prefix = fresh_prefix()
        with _client(self.server) as client:
            source = f"{{{self.prefix}:"
            for name in client.scan_iter(match=f"{source}*", count=1000):
                text = name.decode()
                dumped = client.dump(name)
                client.restore("{" + prefix + ":" + text[len(source) :], 0, dumped)
            index = client.dump(f"{self.prefix}:index")
            client.restore(f"{prefix}:index", 0, index)
        return RedisCopy(self.server, prefix, self.ids)


# -- planted pickles -----------------------------------------------------------


class Planted:
    """Unpickling it creates `path`: the proof that a reader ran store code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


# -- readers -------------------------------------------------------------------


class RanStoreCode(AssertionError):
    """A reader unpickled the planted pickle: its marker file appeared."""


@dataclass(frozen=True)
class Outcome:
    """What a library call did: returned `value`, or raised `error`."""

    value: Any = None
    error: BaseException | None = None

    def same_as(self, other: Outcome) -> bool:
        if self.error is not None or other.error is not None:
            return (
                self.error is not None
                and other.error is not None
                and type(self.error) is type(other.error)
                and str(self.error) == str(other.error)
            )
        return bool(self.value == other.value)

    def __repr__(self) -> str:
        if self.error is not None:
            return f"raised {type(self.error).__name__}: {self.error}"
        return f"returned {self.value!r}"[:300]


async def _outcome(call: Any) -> Outcome:
    try:
        return Outcome(value=await call)
    except Exception as exc:  # judged by the caller
        return Outcome(error=exc)


def library_readers(url: str, execution_id: str, marker: Path | None = None) -> dict[str, Outcome]:
    """status(), list_executions() and then resume() of `execution_id`, in
    this process, on a store opened for the purpose. If `marker` appears
    during a call, that call's outcome is replaced by a RanStoreCode error
    (and the marker removed, so the next call's check is its own)."""

    async def go() -> dict[str, Outcome]:
        store = open_store(url)
        calls = {
            "status": lambda: resumable.status(execution_id, store=store),
            "list_executions": lambda: resumable.list_executions(store=store),
            "resume": lambda: resumable.resume(execution_id, store=store),
        }
        found: dict[str, Outcome] = {}
        try:
            for reader, call in calls.items():
                found[reader] = await _outcome(call())
                if marker is not None and marker.exists():
                    marker.unlink()
                    found[reader] = Outcome(error=RanStoreCode(f"{reader}: {found[reader]!r}"))
        finally:
            await store.close()
        return found

    with configured(url):
        return asyncio.run(go())


def cli_readers(url: str, execution_id: str) -> list[list[str]]:
    """Every reading command, `resume` last (it may change the execution)."""
    store = ["--store", url]
    return [
        [*store, "show", execution_id],
        [*store, "show", "--values", execution_id],
        [*store, "--json", "show", execution_id],
        [*store, "--json", "show", "--values", execution_id],
        [*store, "list"],
        [*store, "--json", "list"],
        [*store, "resume", execution_id],
    ]


def cli_batch(
    commands: list[list[str]], markers: list[Path | None] | None = None
) -> list[dict[str, Any]]:
    """Run the commands in one `python -m support.cli_batch` process (see there);
    each result's "marker" says whether its marker file appeared."""
    markers = markers or [None] * len(commands)
    # One store kind per batch (the copies of one built store): one configuration.
    urls = {argv[argv.index("--store") + 1] for argv in commands}
    assert len({str(sorted(configuration(u).items())) for u in urls}) == 1, urls
    url = next(iter(urls))
    batch = [
        {"argv": argv, "marker": None if marker is None else str(marker)}
        for argv, marker in zip(commands, markers, strict=True)
    ]
    ran = subprocess.run(
        [sys.executable, "-m", "support.cli_batch"],
        input=json.dumps(batch),
        env=process_env(url),
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, (ran.returncode, ran.stdout[-2000:], ran.stderr[-4000:])
    results: list[dict[str, Any]] = json.loads(ran.stdout)
    for result in results:
        result["process_stderr"] = ran.stderr
    return results


# The library's own log lines (structlog's console format), which the CLI
# also writes to stderr; anything else there is the command's error.
_LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(debug|info|warning|error)\s*\] ")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not _LOG_LINE.match(line)]


def judge_library(
    reader: str, got: Outcome, pristine: Outcome, execution_ids: tuple[str, ...]
) -> str | None:
    """None if `got` is acceptable, else what is wrong. Acceptable: a
    ResumableError naming the execution; the pristine store's outcome; and
    for the readers that return no user values (status, list_executions),
    any return."""
    if isinstance(got.error, RanStoreCode):
        return f"{reader}: THE PLANTED PICKLE RAN ({got.error})"
    if got.error is not None:
        if got.same_as(pristine):
            return None
        if not isinstance(got.error, ResumableError):
            return f"{reader}: raised {type(got.error).__name__}, not a ResumableError: {got!r}"
        if not any(i in str(got.error) for i in execution_ids):
            return f"{reader}: the error does not name {execution_ids[0]!r}: {got!r}"
        return None
    if reader in ("status", "list_executions") or got.same_as(pristine):
        return None
    return f"{reader}: {got!r}, where the untampered store gives {pristine!r}"


def judge_cli(
    result: dict[str, Any], pristine: dict[str, Any], execution_ids: tuple[str, ...]
) -> str | None:
    """None if the command's behaviour is acceptable, else what is wrong:
    no traceback; a non-zero exit with a one-line error naming the
    execution (or exactly the untampered store's failure); or exit 0, which
    for `resume` must print exactly what the untampered store's resume does."""
    command = " ".join(a for a in result["argv"] if not a.startswith(("sqlite:", "redis:")))
    command = command.replace("--store ", "")
    stderr = result["stderr"]
    if result.get("marker"):
        return f"`{command}`: THE PLANTED PICKLE RAN (exit {result['code']}, {stderr[-300:]!r})"
    if "Traceback" in stderr or "Traceback" in result.get("process_stderr", ""):
        return f"`{command}`: a traceback: {stderr[-1500:]}"
    lines = error_lines(stderr)
    is_resume = "resume" in result["argv"]
    if result["code"] == 0:
        if is_resume and result["stdout"] != pristine["stdout"]:
            return (
                f"`{command}`: exit 0 printing {result['stdout'][-300:]!r}, where the "
                f"untampered store gives {pristine['stdout'][-300:]!r} (exit {pristine['code']})"
            )
        return None
    if len(lines) != 1 or not lines[0].startswith("resumable: "):
        return f"`{command}`: exit {result['code']}, stderr not one error line: {stderr[-1500:]!r}"
    if result["code"] == pristine["code"] and lines == error_lines(pristine["stderr"]):
        return None
    if not any(i in lines[0] for i in execution_ids):
        return f"`{command}`: the error does not name {execution_ids[0]!r}: {lines[0]!r}"
    return None


class Bases:
    """The stores of one test module (per xdist worker): built on first use,
    with what every reader does on an untouched copy."""

    def __init__(self, request: pytest.FixtureRequest, factory: pytest.TempPathFactory) -> None:
        self._request = request
        self._factory = factory
        self._built: dict[str, Base] = {}
        self._pristine: dict[str, dict[str, Any]] = {}

    def __call__(self, kind: str) -> Base:
        if kind not in self._built:
            if kind == "sqlite":
                self._built[kind] = SQLiteBase(self._factory.mktemp("tamper-base"))
            else:
                self._built[kind] = RedisBase(self._request.getfixturevalue("redis_url"))
        return self._built[kind]

    def pristine(self, kind: str, directory: Path) -> dict[str, Any]:
        """{"library": {target: {reader: Outcome}}, "cli": {target: [result]}},
        the CLI results in the order of `cli_readers` and then `--json resume`."""
        if kind in self._pristine:
            return self._pristine[kind]
        base = self(kind)
        targets = ("killed", "completed", "failed")
        library: dict[str, dict[str, Outcome]] = {}
        commands: list[list[str]] = []
        for target in targets:
            execution_id = base.ids[target]
            copy = base.copy(directory / f"pristine-{target}-lib")
            library[target] = library_readers(copy.url, execution_id)
            copy = base.copy(directory / f"pristine-{target}-cli")
            json_copy = base.copy(directory / f"pristine-{target}-cli-json")
            commands += cli_readers(copy.url, execution_id)
            commands.append(["--store", json_copy.url, "--json", "resume", execution_id])
        results = cli_batch(commands)
        per = len(results) // len(targets)
        cli = {t: results[i * per : (i + 1) * per] for i, t in enumerate(targets)}
        # The untouched store resumes to the uninterrupted result.
        resumed = library["killed"]["resume"]
        assert resumed.error is None, resumed
        got = {k: v for k, v in resumed.value.items() if k not in ("stamp", "ident")}
        assert got == tampered.expected_without_journal(tampered.N), got
        for result in cli["killed"]:
            assert result["code"] == 0, result
        self._pristine[kind] = {"library": library, "cli": cli}
        return self._pristine[kind]
