"""The carry corpus: loop programs users really write, each killed with a
real SIGKILL at several checkpoint writes and resumed in a fresh process by
`tests/test_corpus.py`.

The rule they hold the library to (README, "Guarantees" and "What gets carried"): **AUTO carry never
gives a result that differs from an uninterrupted run.** A program either
resumes to the exact uninterrupted result, with no checkpointed iteration run
twice, or is refused with a clear `ResumableError` in its first run, at the
loop's first checkpoint at the latest, before any checkpoint is written.

Conventions every program follows:

* a module-level `@resumable async def` taking the path of a log file (its
  only argument, stored with the execution, so the resumed run logs there
  too); the harness starts it by reference (`corpus.MODULE:NAME`) and a
  fresh process resumes it by its stored reference;
* deterministic, also across processes with different PYTHONHASHSEED values;
* its loop body calls `record(log, tag)` once per iteration with a tag unique
  to that iteration (`corpus._log`); a body with checkpointed work inside it
  (a nested loop) records at its end, after that work, so that a record is
  never followed by a write of another iteration before its own checkpoint;
* it returns plain JSON data; the harness compares the JSON text, so the
  order of dict keys counts too.

Each program is declared with its **expected outcome**, `@exact(...)` or
`@refused(ErrorClass, ...)`, next to its code, with a comment where the
expectation is debatable. The expectations are the product's contract, not a
description of today's behaviour: they are never weakened to make a test pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

F = TypeVar("F")

# Every module of programs, imported by the harness to collect them. Each
# program module imports only the libraries its programs use: a subprocess
# imports one module, so start-up stays short.
MODULES = (
    "corpus.http_calls",
    "corpus.llm",
    "corpus.models",
    "corpus.arrays",
    "corpus.frames",
    "corpus.objects",
    "corpus.containers",
    "corpus.inner",
    "corpus.text_io",
    "corpus.tools",
    "corpus.flow",
    "corpus.names",
    "corpus.shapes",
)


@dataclass(frozen=True, slots=True)
class Expect:
    """What a program must do under `carry=AUTO`."""

    outcome: Literal["exact", "refused"]
    # refused: the class name in `resumable.errors`, and what its message
    # (and, for CheckpointError, its `variable` attribute) must name.
    error: str | None = None
    variable: str | None = None
    mentions: tuple[str, ...] = ()
    # Loop-body records a refused program may make before the refusal: the
    # first checkpoint comes after the first iteration (one per loop that
    # starts before it).
    work_before_refusal: int = 1
    # Checkpoint writes that may still be in flight when another one starts.
    # 0 for sequential programs: each checkpoint is awaited before the next
    # iteration, so write N-1 is complete when write N starts. With c tasks
    # writing concurrently (amap items, agather awaitables, the fan-out's own
    # group-commit flush), the task making write N has its own earlier write
    # complete, but each other task may have one in flight: c - 1 writes.
    in_flight_writes: int = 0
    why: str = ""


@dataclass(frozen=True, slots=True)
class Program:
    name: str  # the test id
    reference: str  # "corpus.module:attr.path", what the child process calls
    expect: Expect
    redis: bool  # also run against the Redis store


PROGRAMS: dict[str, Program] = {}


def _register(expect: Expect, call: str | None, redis: bool) -> Callable[[F], F]:
    def register(function: F) -> F:
        module = str(getattr(function, "__module__", ""))
        qualname = str(getattr(function, "__qualname__", ""))
        name = qualname.rpartition(".")[2] if call is None else call.replace(".", "_")
        if name in PROGRAMS:
            raise ValueError(f"two corpus programs are named {name!r}")
        reference = f"{module}:{call or qualname}"
        PROGRAMS[name] = Program(name, reference, expect, redis)
        return function

    return register


def exact(
    *, in_flight_writes: int = 0, redis: bool = False, call: str | None = None, why: str = ""
) -> Callable[[F], F]:
    """The program resumes to the uninterrupted result from any kill point.
    `call` is the attribute path to call in the module when it is not the
    function itself (a bound method of a module-level instance)."""
    return _register(Expect("exact", in_flight_writes=in_flight_writes, why=why), call, redis)


def refused(
    error: str,
    *,
    variable: str | None = None,
    mentions: tuple[str, ...] = (),
    work_before_refusal: int = 1,
    why: str = "",
) -> Callable[[F], F]:
    """The first run fails with `resumable.errors.<error>` before any
    checkpoint is written; the message names `variable` and `mentions`."""
    expect = Expect(
        "refused",
        error=error,
        variable=variable,
        mentions=mentions,
        work_before_refusal=work_before_refusal,
        why=why,
    )
    return _register(expect, None, False)


def programs() -> dict[str, Program]:
    """Every program of every corpus module, by name (imports them all)."""
    import importlib

    for module in MODULES:
        importlib.import_module(module)
    return PROGRAMS


__all__ = ["MODULES", "PROGRAMS", "Expect", "Program", "exact", "programs", "refused"]
