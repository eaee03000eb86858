"""The analysis cache gives what a fresh analysis gives, or nothing.

Real files in a real directory: entries written by `bytecode.facts` and
`loopsite.loop_site`, read back in this process (with the in-process caches
emptied) and in other processes; damaged entries; a directory others could
write to; the cache turned off.
"""

from __future__ import annotations

import contextlib
import dis
import importlib
import itertools
import json
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bytecode import code_objects, modules

from resumable import _config
from resumable.errors import LoopShapeError
from resumable.runtime import analysis_cache, analysis_wire, bytecode, loopsite

# A slice of the standard library (async code, generators, comprehensions,
# match, with, try/except*, closures, class bodies) and our own package.
CORPUS = ["asyncio.tasks", "json", "csv", "dataclasses", "re", "inspect", "contextlib", "ast"]
CORPUS += ["tomllib", "heapq", "resumable", "corpus"]

FIELDS = (
    "offsets",
    "index_of",
    "successors",
    "depth",
    "effects",
    "uses",
    "defs",
    "may_defs",
    "frame_escapes",
    "anext_sources",
    "call_sources",
    "returns",
    "outer_effects",
    "instructions",
)


@pytest.fixture(name="cache_dir")
def _cache_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty cache of this test's own; the in-process caches emptied."""
    analysis_cache.configure(tmp_path)
    forget()
    yield tmp_path
    _config.reset()
    forget()


def forget() -> None:
    """Empty the in-process caches: the next analysis comes from disk or afresh."""
    bytecode._cache.clear()
    loopsite._cache.clear()


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("analysis/*/*.json"))


def all_code(names: list[str]) -> Iterator[types.CodeType]:
    for name in names:
        for module in modules(name):
            yield from code_objects(module)


def assert_same_facts(found: bytecode.CodeFacts, fresh: bytecode.CodeFacts) -> None:
    assert found.code is fresh.code
    for field in FIELDS:
        assert getattr(found, field) == getattr(fresh, field), field
    # The same nested code objects, not merely equal ones.
    for mine, theirs in zip(found.effects, fresh.effects, strict=True):
        assert mine.via is theirs.via


def loop_calls(code: types.CodeType) -> Iterator[int]:
    """Offsets of the calls that feed an `async for` (the call right before
    GET_AITER)."""
    instructions = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    for before, ins in itertools.pairwise(instructions):
        if ins.opname == "GET_AITER" and before.opname.startswith("CALL"):
            yield before.offset


class TestAHitIsAFreshAnalysis:
    """An entry read back gives exactly the facts the analysis gives."""

    @pytest.mark.parametrize("name", CORPUS)
    def test_every_function_of_the_corpus(self, cache_dir: Path, name: str):
        codes = list(all_code([name]))
        fresh = {}
        for code in codes:
            fresh[code] = bytecode.facts(code)  # a miss: analysed, then written
        written = len(entries(cache_dir))
        assert written > 10
        forget()
        for code in codes:
            found = bytecode.facts(code)
            assert found is not fresh[code]
            assert found._instructions is None  # decoded, not analysed
            assert_same_facts(found, fresh[code])
        assert len(entries(cache_dir)) == written  # a hit writes nothing

    def test_every_checkpointed_loop_of_the_corpus(self, cache_dir: Path):
        sites = [(c, o) for c in all_code(["corpus", "jobs"]) for o in loop_calls(c)]
        fresh: dict[tuple[types.CodeType, int], object] = {}
        for site in sites:
            try:
                fresh[site] = loopsite.loop_site(*site)
            except (LoopShapeError, bytecode.Unmodelled) as refused:
                fresh[site] = type(refused)
        assert sum(not isinstance(f, type) for f in fresh.values()) > 10
        forget()
        for site in sites:
            if isinstance(fresh[site], type):  # a refusal is never cached
                with pytest.raises(fresh[site]):  # type: ignore[call-overload]
                    loopsite.loop_site(*site)
                continue
            found = loopsite.loop_site(*site)
            assert found is not fresh[site]
            assert found == fresh[site]
            assert found.roots == fresh[site].roots  # type: ignore[attr-defined]

    def test_a_refused_loop_is_refused_again(self, cache_dir: Path):
        """Refusals are not cached: each process meets them anew."""
        source = "async def f(xs):\n    return [x async for x in aiter_checkpointed(xs)]\n"
        module = compile(source, "/app/shapes.py", "exec", dont_inherit=True)
        code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
        calls = [i.offset for i in dis.get_instructions(code) if i.opname.startswith("CALL")]
        refused = []
        for offset in calls:
            with contextlib.suppress(LoopShapeError):
                loopsite.loop_site(code, offset)
                continue
            refused.append(offset)
        assert refused
        forget()
        for offset in refused:
            with pytest.raises(LoopShapeError):
                loopsite.loop_site(code, offset)
        assert not list(cache_dir.glob("analysis/*/loop-*"))

    def test_another_process_reads_what_this_one_wrote(self, cache_dir: Path):
        """Each process compares what it got (read, or analysed) with its own
        fresh analysis: hash randomisation differs between them."""
        script = textwrap.dedent(
            """
            import json, sys
            from resumable.runtime import analysis_cache, bytecode
            import corpus.flow as module
            analysis_cache.configure(sys.argv[1])
            out = {}
            for name, value in sorted(vars(module).items()):
                code = getattr(getattr(value, "__wrapped__", value), "__code__", None)
                if code is not None and code.co_filename == module.__file__:
                    hit = analysis_cache.read(code, "facts") is not None
                    found, fresh = bytecode.facts(code), bytecode._analyse(code)
                    same = all(
                        getattr(found, f) == getattr(fresh, f)
                        for f in ("offsets", "successors", "depth", "effects", "uses", "defs",
                                  "may_defs", "anext_sources", "call_sources", "returns")
                    )
                    out[name] = [hit, same]
            print(json.dumps(out))
            """
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

        def run() -> dict[str, list[bool]]:
            done = subprocess.run(
                [sys.executable, "-c", script, str(cache_dir)],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            return json.loads(done.stdout)

        first, second = run(), run()
        assert len(first) > 3
        assert first == {name: [False, True] for name in first}  # analysed, and written
        assert second == {name: [True, True] for name in first}  # read, and the same


SOURCE = """
async def agent(n):
    messages = []
    async for i in aiter_checkpointed(range(n)):
        messages.append({BODY})
    return messages
"""


def define(body: str, filename: str) -> types.CodeType:
    """`agent` compiled from SOURCE with `body`, as a module at `filename`."""
    module = compile(SOURCE.replace("{BODY}", body), filename, "exec")
    return next(c for c in module.co_consts if isinstance(c, types.CodeType))


class TestWhatMisses:
    """Anything that may change the analysis is a different entry."""

    def test_a_changed_body_under_the_same_name_misses(self, cache_dir: Path):
        first = define("i", "/app/jobs.py")
        second = define("(i, n)", "/app/jobs.py")
        assert first.co_qualname == second.co_qualname
        bytecode.facts(first)
        assert analysis_cache.read(second, "facts") is None
        forget()
        assert_same_facts(bytecode.facts(second), bytecode._analyse(second))
        assert len(entries(cache_dir)) == 2

    @pytest.mark.parametrize(
        "change",
        [
            lambda code: code.replace(co_consts=(*code.co_consts, "extra")),
            lambda code: code.replace(co_names=(*code.co_names, "extra")),
            lambda code: code.replace(co_firstlineno=code.co_firstlineno + 1),
            lambda code: code.replace(co_filename="/elsewhere.py"),
            lambda code: code.replace(co_linetable=code.co_linetable + b"\x00"),
            lambda code: code.replace(co_varnames=tuple(n + "_" for n in code.co_varnames)),
        ],
    )
    def test_every_input_of_the_analysis_is_in_the_key(self, change):
        code = define("i", "/app/jobs.py")
        assert analysis_cache.code_digest(change(code)) != analysis_cache.code_digest(code)

    def test_a_nested_function_is_in_its_parent_key(self):
        source = "def f():\n    def g(x):\n        return x + {}\n    return g"
        outer = compile(source.format(1), "m", "exec")
        changed = compile(source.format(2), "m", "exec")
        assert analysis_cache.code_digest(outer) != analysis_cache.code_digest(changed)

    def test_another_interpreter_or_analysis_uses_another_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        here = analysis_cache._version()
        assert here == analysis_cache._VERSION
        monkeypatch.setattr(sys, "version", sys.version + " (another build)")
        assert analysis_cache._version() != here
        monkeypatch.undo()
        monkeypatch.setattr(analysis_cache, "FORMAT", analysis_cache.FORMAT + 1)
        assert analysis_cache._version() != here
        monkeypatch.undo()
        # An edited (or upgraded) analysis module: its size or mtime moves.
        module = tmp_path / "opcodes.py"
        module.write_text("x = 1\n")
        names = (*analysis_cache._ANALYSIS_MODULES, str(module))  # joined as it is
        monkeypatch.setattr(analysis_cache, "_ANALYSIS_MODULES", names)
        before = analysis_cache._version()
        assert before != here
        module.write_text("x = 12\n")
        assert analysis_cache._version() != before


def damaged(blob: bytes, how: str) -> bytes:
    header, _, body = blob.partition(b"\n")
    magic, version, key, checksum = header.split(b" ")
    if how == "truncated":
        return blob[: len(blob) // 2]
    if how == "empty":
        return b""
    if how == "flipped":
        return header + b"\n" + body.replace(b"[", b"{", 1)
    if how == "other format":
        return b" ".join([magic, b"999", key, checksum]) + b"\n" + body
    if how == "other key":
        return b" ".join([magic, version, b"facts-0000", checksum]) + b"\n" + body
    if how == "not json":
        return analysis_cache._seal(None, key.decode())[: -len(b"null")] + b"\xff\xfe"
    raise AssertionError(how)


class TestFailClosed:
    """A damaged or foreign entry is a miss: the code is analysed afresh."""

    @pytest.mark.parametrize(
        "how", ["truncated", "empty", "flipped", "other format", "other key", "not json"]
    )
    def test_a_damaged_entry_is_analysed_afresh(self, cache_dir: Path, how: str):
        code = define("i", "/app/jobs.py")
        bytecode.facts(code)
        [entry] = entries(cache_dir)
        entry.write_bytes(damaged(entry.read_bytes(), how))
        forget()
        assert analysis_cache.read(code, "facts") is None
        found = bytecode.facts(code)
        assert found._instructions is not None  # analysed, not decoded
        assert_same_facts(found, bytecode._analyse(code))
        assert analysis_cache.read(code, "facts") is not None  # and written again

    @pytest.mark.parametrize(
        "tamper",
        [
            lambda d: d.update(offsets=d["offsets"][:-1]),
            lambda d: d.update(offsets=[*d["offsets"][:-1], 10**9]),
            lambda d: d["successors"].__setitem__(0, [10**6]),
            lambda d: d["successors"].__setitem__(0, [-1]),
            lambda d: d.update(depth=["0"] * len(d["depth"])),
            lambda d: d["effects"][0].__setitem__(1, "teleport"),
            lambda d: d["effects"][0].__setitem__(2, len(d["vals"])),
            lambda d: d["vals"][0].__setitem__(4, "bytearray"),
            lambda d: d["vals"][0].__setitem__(1, [[0, 0, 0]]),
            lambda d: d["tags"][0].__setitem__(1, 99),
            lambda d: d["tags"][0].__setitem__(2, 1),
            lambda d: d.update(uses=[True] * len(d["uses"])),
            lambda d: d.pop("returns"),
            lambda d: d.update(extra=1),
        ],
    )
    def test_data_of_the_wrong_shape_is_refused(self, cache_dir: Path, tamper):
        """Even with a valid checksum (someone wrote it on purpose)."""
        code = define("i", "/app/jobs.py")
        data = analysis_wire.encode_facts(bytecode._analyse(code))
        assert data is not None
        assert analysis_wire.decode_facts(code, data) is not None
        tamper(data)
        assert analysis_wire.decode_facts(code, data) is None

    def test_an_entry_for_other_code_is_refused(self, cache_dir: Path):
        code = define("i", "/app/jobs.py")
        other = define("(i, n, i * n, str(i))", "/app/jobs.py")
        data = analysis_wire.encode_facts(bytecode._analyse(other))
        assert analysis_wire.decode_facts(code, data) is None

    def test_a_loop_entry_of_the_wrong_shape_is_refused(self, cache_dir: Path):
        code = define("i", "/app/jobs.py")
        [call] = loop_calls(code)
        facts = bytecode.facts(code)
        data = analysis_wire.encode_site(loopsite.loop_site(code, call))
        assert analysis_wire.decode_site(facts, data) is not None
        for tamper in (
            lambda d: d.update(body=[*d["body"], 10**6]),
            lambda d: d.update(head_offset=-2),
            lambda d: d["rebound"].update(i="x"),
            lambda d: d.update(live="messages"),
        ):
            broken = json.loads(json.dumps(data))
            tamper(broken)
            assert analysis_wire.decode_site(facts, broken) is None

    def test_a_directory_others_may_write_to_is_not_used(self, tmp_path: Path):
        if os.name != "posix":
            pytest.skip("POSIX permissions")
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        analysis_cache.configure(shared)
        try:
            assert analysis_cache.directory() is None
            code = define("i", "/app/jobs.py")
            analysis_cache.write(code, "facts", "", {"anything": 1})
            assert not list(shared.rglob("*.json"))
        finally:
            _config.reset()

    def test_writers_racing_for_one_entry_leave_a_whole_one(self, cache_dir: Path):
        script = textwrap.dedent(
            """
            import sys
            from resumable.runtime import analysis_cache, bytecode, analysis_wire
            analysis_cache.configure(sys.argv[1])
            code = compile(open(sys.argv[2]).read(), "/app/race.py", "exec", dont_inherit=True)
            for _ in range(200):
                for const in code.co_consts:
                    if hasattr(const, "co_code"):
                        facts = bytecode._analyse(const)
                        analysis_cache.write(const, "facts", "", analysis_wire.encode_facts(facts))
            """
        )
        source = cache_dir / "race.py"
        source.write_text(SOURCE.replace("{BODY}", "i"))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        writers = [
            subprocess.Popen([sys.executable, "-c", script, str(cache_dir), str(source)], env=env)
            for _ in range(4)
        ]
        assert all(w.wait(timeout=60) == 0 for w in writers)
        # dont_inherit: this module's `from __future__` flags would make other code.
        code = compile(source.read_text(), "/app/race.py", "exec", dont_inherit=True)
        agent = next(c for c in code.co_consts if isinstance(c, types.CodeType))
        [entry] = entries(cache_dir)
        assert not list(entry.parent.glob(".*.tmp"))
        assert_same_facts(
            analysis_wire.decode_facts(agent, analysis_cache.read(agent, "facts")),
            bytecode._analyse(agent),
        )


class TestTurningItOff:
    """Turned off, nothing is read or written."""

    def test_by_the_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("RESUMABLE_CACHE_DIR", str(tmp_path))
        monkeypatch.setenv("RESUMABLE_ANALYSIS_CACHE", "0")
        analysis_cache.configure(None)
        forget()
        try:
            assert analysis_cache.directory() is None
            bytecode.facts(define("i", "/app/jobs.py"))
            assert not list(tmp_path.rglob("*.json"))
        finally:
            _config.reset()
            forget()

    def test_by_configure(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("RESUMABLE_CACHE_DIR", str(tmp_path))
        _config.configure(analysis_cache=False)
        forget()
        try:
            assert analysis_cache.directory() is None
            bytecode.facts(define("i", "/app/jobs.py"))
            assert not list(tmp_path.rglob("*.json"))
        finally:
            _config.reset()
            forget()

    def test_configure_checks_its_argument(self):
        with pytest.raises(TypeError, match="analysis_cache=3"):
            _config.configure(analysis_cache=3)  # type: ignore[arg-type]


class TestWhereItLives:
    """The user's cache directory, as platformdirs would choose it on Linux."""

    def test_xdg_cache_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        if sys.platform in ("win32", "darwin"):
            pytest.skip("the XDG layout is Linux's")
        monkeypatch.delenv("RESUMABLE_CACHE_DIR")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert analysis_cache._base_directory() == str(tmp_path / "resumable")
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the spec says
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        assert analysis_cache._base_directory() == str(tmp_path / "home" / ".cache" / "resumable")

    def test_resumable_cache_dir_wins(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("RESUMABLE_CACHE_DIR", str(tmp_path / "mine"))
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert analysis_cache._base_directory() == str(tmp_path / "mine")


def test_the_corpus_modules_import():
    """The corpus names above exist on this interpreter (tomllib: 3.11+)."""
    for name in CORPUS:
        importlib.import_module(name)
