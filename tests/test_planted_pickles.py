"""Issue 17: a pickle planted in any stored blob never runs.

`jobs.tampered` builds, in a real store, a SIGKILLed execution holding every
record kind a resume reads (journaled values, a step and a memoized step, an
`amap` and an `agather` with their items, a child, a loop header, layout,
list/dict/set deltas and folded chunks, a step in the interrupted
iteration), a completed one (its result) and a failed one (its error). Each
case writes over one place, through the store's own file or server, a
pickle whose unpickling creates a marker file, bare and behind tag bytes
that claim another format or a signature (and behind an outcome tag for
item and memo records; inside an otherwise plain header for headers). Then
every reader runs: `status()`, `list_executions()`, `resume()` in this
process; `show`, `show --values`, `list` (each also with --json), `resume`
and `--json resume` in a real CLI process.

Never: the marker file; a traceback; a library error that is not a
ResumableError naming the execution; a resume returning anything but what
the untouched store's resume returns. A reader that does not read the bad
place may succeed (`show`, `list`, `status()`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from support.clirun import cli
from support.tampering import (
    PLACES,
    Bases,
    Place,
    Planted,
    cli_batch,
    cli_readers,
    judge_cli,
    judge_library,
    library_readers,
    plain_header,
    process_env,
    target_of,
)

from resumable.runtime import wire

# Places whose record starts with an outcome tag (b"r" result, b"e" error).
OUTCOME_PLACES = {"memo", "amap-item", "agather-item"}

Maker = Callable[[Path], bytes]


def _pickled(marker: Path) -> bytes:
    return pickle.dumps(Planted(marker), protocol=pickle.HIGHEST_PROTOCOL)


# Format claims put in front of the pickle: none (a bare pickle tag), msgpack,
# and a signature of zeros.
FORGED: dict[str, Callable[[bytes], bytes]] = {
    "p": lambda p: b"p" + p,
    "m": lambda p: b"m" + p,
    "s0": lambda p: b"s" + bytes(32) + b"p" + p,
}


def _nested(original: bytes, execution_id: str, key: str) -> Callable[[bytes], bytes] | None:
    """A header as stored, but unsigned, plain, and with every nested blob
    (carried values, a step's outcome, a journaled value) a planted pickle;
    None when the header holds no nested blob."""
    try:
        # As a map: format 4 writes a loop's header as an array.
        header = wire.check_header(execution_id, key, plain_header(original))
    except Exception:  # a format this test does not know: a header of every field
        header = {wire.KIND: wire.LOOP, wire.SITE: "x", wire.INDEX: 0, wire.CARRIED: b""}
    blobs = [name for name, value in header.items() if isinstance(value, bytes)]
    if not blobs:
        return None

    def make(planted: bytes) -> bytes:
        forged = dict(header)
        for name in blobs:
            forged[name] = b"p" + planted
        return b"m" + msgpack.packb(forged, use_bin_type=True)

    return make


def variants(name: str, place: Place, original: bytes, execution_id: str) -> dict[str, Maker]:
    found: dict[str, Callable[[bytes], bytes]] = dict(FORGED)
    if name in OUTCOME_PLACES:
        for tag in (b"r", b"e"):
            for label, forge in FORGED.items():
                found[f"{tag.decode()}+{label}"] = lambda p, t=tag, f=forge: t + f(p)
    if place.key is not None and wire.parse_key(place.key).kind == "header":
        nested = _nested(original, execution_id, place.key)
        if nested is not None:
            found["nested"] = nested
            found["nested-s0"] = lambda p: b"s" + bytes(32) + nested(p)
    return {label: (lambda m, f=forge: f(_pickled(m))) for label, forge in found.items()}


@pytest.fixture(name="base", scope="module")
def _base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return Bases(request, tmp_path_factory)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
@pytest.mark.parametrize("name", sorted(PLACES))
def test_planted_pickle_never_runs(base, tmp_path: Path, kind: str, name: str):
    built = base(kind)
    expected = base.pristine(kind, tmp_path)
    probe = built.copy(tmp_path / "probe")
    place = probe.resolve(name)
    original = probe.read(place)
    target, execution_id, named = target_of(built.ids, place)
    problems: list[str] = []
    commands: list[list[str]] = []
    labels: list[str] = []
    markers: list[Path] = []  # of each CLI command
    made = variants(name, place, original, built.ids[place.execution])
    for label, make in made.items():
        marker = tmp_path / f"ran-{label}"
        copy = built.copy(tmp_path / label / "library")
        copy.write(place, make(marker))
        outcomes = library_readers(copy.url, execution_id, marker)
        for reader, got in outcomes.items():
            problem = judge_library(reader, got, expected["library"][target][reader], named)
            if problem:
                problems.append(f"[{label}] {problem}")
        copy = built.copy(tmp_path / label / "cli")
        copy.write(place, make(marker))
        json_copy = built.copy(tmp_path / label / "cli-json")
        json_copy.write(place, make(marker))
        batch = [*cli_readers(copy.url, execution_id)]
        batch.append(["--store", json_copy.url, "--json", "resume", execution_id])
        commands += batch
        labels += [label] * len(batch)
        markers += [marker] * len(batch)
    results = cli_batch(commands, markers)
    pristine_cli = expected["cli"][target]
    for i, (label, result) in enumerate(zip(labels, results, strict=True)):
        problem = judge_cli(result, pristine_cli[i % len(pristine_cli)], named)
        if problem:
            problems.append(f"[{label}] {problem}")
    ran = sorted({m.name for m in markers if m.exists()})
    if ran:
        problems.append(f"the planted pickle RAN, after every reader was checked: {ran}")
    assert not problems, f"{kind} {name} ({place.describe()}):\n" + "\n".join(problems)


def test_real_cli_processes_agree_with_the_batch(base, tmp_path: Path):
    """The batch runner (`cli_batch`) stands in for one `resumable` process
    per command; here each command is a real process of its own, on a
    planted loop header and a planted list chunk."""
    built = base("sqlite")
    expected = base.pristine("sqlite", tmp_path)
    execution_id = built.ids["killed"]
    for name in ("loop-header", "list-chunk"):
        copy = built.copy(tmp_path / name)
        place = copy.resolve(name)
        marker = tmp_path / f"ran-{name}"
        copy.write(place, FORGED["p"](_pickled(marker)))
        for argv, pristine_result in zip(
            cli_readers(copy.url, execution_id), expected["cli"]["killed"], strict=False
        ):
            ran = cli(*argv, env=process_env(copy.url))
            result = {"argv": argv, "code": ran.returncode, "stdout": ran.stdout}
            result["stderr"] = ran.stderr
            assert not marker.exists(), (name, argv)
            problem = judge_cli(result, pristine_result, (execution_id,))
            assert problem is None, (name, problem)
            if "resume" in argv:
                assert ran.returncode != 0, (name, ran.stdout)
