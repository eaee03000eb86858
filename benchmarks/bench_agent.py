"""An agent loop of 1,000 turns (--quick: 100) checkpointed at every turn on
SQLite, side by side with LangGraph and DBOS Transact. Each turn appends one
message dict (~200 bytes of payload) to the conversation.

* resumable: `@resumable async def agent(n)` with `messages = []` and
  `async for i in aiter_checkpointed(range(n)): messages.append(...)`.
* LangGraph: a `StateGraph` whose `messages: Annotated[list, operator.add]`
  channel gets one message per super-step from a single node that loops on a
  conditional edge, compiled with `AsyncSqliteSaver` (thread_id per run).
* DBOS: a workflow that runs one `@DBOS.step()` per turn returning the
  message, on a SQLite system database.

Measured per system: microseconds per turn (wall time of the whole run /
turns), bytes on disk after the run (the database file and its -wal, -shm
and -journal files, after closing), and the time to the first new turn
after a crash: a child process runs the agent and sends itself SIGKILL when
turn n/2 starts; a fresh process then resumes it and times from the resume
call to the start of the first turn that was not checkpointed.

Targets: resumable / each peer <= 1.0x for all three figures.
LangGraph and DBOS are optional benchmark dependencies: `pip install -e
'.[bench]'` (`make bench` installs them). A peer that cannot be imported is
reported as not run, with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import operator
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from benchmarks._harness import Report, Sample, arguments, interleaved
from resumable import aiter_checkpointed, open_store, resumable

CONTENT = 180
SYSTEMS = ("resumable", "langgraph", "dbos")

# Set by a child process before it runs the agent: the turn at whose start it
# sends itself SIGKILL, and where the first new turn's start is recorded.
KILL_AT: list[int] = []
FIRST_NEW: list[tuple[float, int]] = []


def make_message(i: int) -> dict[str, Any]:
    """~200 bytes of payload: a content string of 180 characters that differ
    from turn to turn (no store can dedupe or compress them away)."""
    text = "".join(hashlib.sha256(f"{i}:{j}".encode()).hexdigest() for j in range(3))
    content = f"turn {i:05d}: {text}"[:CONTENT]
    return {"role": "assistant", "content": content, "turn": i}


def payload_bytes(n: int) -> int:
    """The messages' own size: their compact JSON encodings, summed."""
    return sum(len(json.dumps(make_message(i), separators=(",", ":"))) for i in range(n))


def turn_started(i: int) -> None:
    # A function, not the loop body: a global the body changed itself would
    # be carried by resumable, and a resume would bring back the old value.
    if KILL_AT and i == KILL_AT[0]:
        os.kill(os.getpid(), signal.SIGKILL)
    if not FIRST_NEW:
        FIRST_NEW.append((time.perf_counter(), i))


# --- resumable ---------------------------------------------------------------


@resumable
async def agent(n: int) -> int:
    messages = []
    async for i in aiter_checkpointed(range(n)):
        turn_started(i)
        messages.append(make_message(i))
    return len(messages)


def _resumable_url(path: Path, variant: str) -> str:
    # The default is WAL + synchronous=NORMAL; -full is synchronous=FULL.
    return f"sqlite:///{path}" + ("?synchronous=full" if variant.endswith("-full") else "")


async def resumable_run(path: Path, n: int, execution_id: str, variant: str) -> float:
    store = open_store(_resumable_url(path, variant))
    # Through the module name: the resuming process imports it from there.
    job = sys.modules["benchmarks.bench_agent"].agent
    began = time.perf_counter()
    done = await job.options(execution_id=execution_id, store=store)(n)
    seconds = time.perf_counter() - began
    await store.close()
    assert done == n, done
    return seconds


async def resumable_resume(path: Path, n: int, execution_id: str, variant: str) -> float:
    from resumable import resume

    began = time.perf_counter()
    done = await resume(execution_id, store=_resumable_url(path, variant))
    assert done == n, done
    return began


# --- LangGraph -----------------------------------------------------------------


class State(TypedDict):
    messages: Annotated[list, operator.add]
    n: int


def langgraph_graph(saver: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    async def turn(state: State) -> dict[str, Any]:
        i = len(state["messages"])
        turn_started(i)
        return {"messages": [make_message(i)]}

    def more(state: State) -> str:
        return "turn" if len(state["messages"]) < state["n"] else END

    graph = StateGraph(State)
    graph.add_node("turn", turn)
    graph.add_edge(START, "turn")
    graph.add_conditional_edges("turn", more, ["turn", END])
    return graph.compile(checkpointer=saver)


async def _langgraph_invoke(graph: Any, start: Any, n: int, thread_id: str, variant: str) -> Any:
    # One super-step per turn, plus slack. durability="sync": each turn's
    # checkpoint is written before the next turn starts, as the others do;
    # -async is LangGraph's default ("async": written while the next step runs).
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": n + 10}
    durability = "async" if variant.endswith("-async") else "sync"
    return await graph.ainvoke(start, config, durability=durability)


async def langgraph_run(path: Path, n: int, thread_id: str, variant: str) -> float:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        graph = langgraph_graph(saver)
        began = time.perf_counter()
        state = await _langgraph_invoke(graph, {"messages": [], "n": n}, n, thread_id, variant)
        seconds = time.perf_counter() - began
    assert len(state["messages"]) == n, len(state["messages"])
    return seconds


async def langgraph_resume(path: Path, n: int, thread_id: str, variant: str) -> float:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    began = time.perf_counter()
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        graph = langgraph_graph(saver)
        state = await _langgraph_invoke(graph, None, n, thread_id, variant)
    assert len(state["messages"]) == n, len(state["messages"])
    return began


# --- DBOS ------------------------------------------------------------------------

DBOS_AGENT: list[Any] = []


def dbos_setup(path: Path, variant: str, executor_id: str | None = None) -> Any:
    """DBOS on a SQLite system database, as it ships (rollback journal,
    synchronous=FULL) or, for -wal, with WAL + synchronous=NORMAL as
    bench_steps.py sets them; the agent workflow registered."""
    if variant.endswith("-wal"):
        import sqlite3

        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        with sqlite3.connect(path) as connection:  # journal_mode persists in the file
            connection.execute("PRAGMA journal_mode=WAL").fetchone()

        @event.listens_for(Engine, "connect")
        def _normal(connection: Any, _record: Any) -> None:
            connection.execute("PRAGMA synchronous=NORMAL")

    from dbos import DBOS

    config: dict[str, Any] = {"name": "bench-agent", "system_database_url": f"sqlite:///{path}"}
    if executor_id is not None:
        config["executor_id"] = executor_id
    DBOS(config=config)  # type: ignore[arg-type]

    @DBOS.step()
    async def turn(i: int) -> dict[str, Any]:
        turn_started(i)
        return make_message(i)

    @DBOS.workflow()
    async def dbos_agent(n: int) -> int:
        messages = []
        for i in range(n):
            messages.append(await turn(i))
        return len(messages)

    DBOS_AGENT[:] = [dbos_agent]
    return DBOS


async def dbos_run(path: Path, n: int, workflow_id: str, variant: str) -> float:
    from dbos import SetWorkflowID

    dbos = dbos_setup(path, variant)
    dbos.launch()
    began = time.perf_counter()
    with SetWorkflowID(workflow_id):
        done = await DBOS_AGENT[0](n)
    seconds = time.perf_counter() - began
    dbos.destroy()
    assert done == n, done
    return seconds


async def dbos_resume(path: Path, n: int, workflow_id: str, variant: str) -> float:
    """DBOS's recovery: launching the executor that owned the PENDING
    workflow re-enqueues it; the queue thread then dequeues and runs it,
    replaying the recorded steps. -byid: an executor that recovers nothing at
    launch calls DBOS.resume_workflow_async(id) (timed from that call)."""
    by_id = variant.endswith("-byid")
    dbos = dbos_setup(path, variant, executor_id="resumer" if by_id else None)
    if by_id:
        dbos.launch()
        began = time.perf_counter()
        handle = await dbos.resume_workflow_async(workflow_id)
    else:
        began = time.perf_counter()
        dbos.launch()
        handle = await dbos.retrieve_workflow_async(workflow_id)
    done = await handle.get_result()
    dbos.destroy()
    assert done == n, done
    return began


RUNS = {"resumable": resumable_run, "langgraph": langgraph_run, "dbos": dbos_run}
RESUMES = {"resumable": resumable_resume, "langgraph": langgraph_resume, "dbos": dbos_resume}


# --- child processes -------------------------------------------------------------

# Every variant is run (whole run, and crash + resume); "-byid" only resumes.
VARIANTS = {
    "resumable": "resumable, SQLite WAL + NORMAL (default)",
    "resumable-full": "resumable, SQLite WAL + FULL (?synchronous=full)",
    "langgraph": "LangGraph, AsyncSqliteSaver, durability=sync",
    "langgraph-async": "LangGraph, AsyncSqliteSaver, durability=async (default)",
    "dbos": "DBOS, SQLite as it ships",
    "dbos-wal": "DBOS, SQLite WAL + NORMAL",
    "dbos-byid": "DBOS, SQLite as it ships, resume_workflow(id)",
}
# The peer configurations a target compares with (the fastest of them):
# those that checkpoint every turn before the next one starts.
PEERS = {"langgraph": ["langgraph"], "dbos": ["dbos", "dbos-wal", "dbos-byid"]}


IMPORTS = {
    "resumable": ["resumable"],
    "langgraph": ["langgraph.graph", "langgraph.checkpoint.sqlite.aio", "aiosqlite"],
    "dbos": ["dbos", "sqlalchemy"],
}


def system_of(variant: str) -> str:
    return variant.split("-", maxsplit=1)[0]


def disk_bytes(path: Path) -> dict[str, int]:
    """The database file and whichever of its -wal, -shm and -journal files exist."""
    files = [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))]
    return {f.name: f.stat().st_size for f in files if f.exists()}


def child() -> None:
    """`python -c 'from benchmarks.bench_agent import child; child()' VARIANT MODE DIR N K ID`:
    one measurement in a fresh process, printed as a JSON line."""
    variant, mode, directory, n, k, run_id = sys.argv[1:7]
    n_turns, kill_at = int(n), int(k)
    system = system_of(variant)
    folder = Path(directory)
    path = folder / f"{system}.db"
    # What the user's module imports at its top, before any timer starts.
    for module in IMPORTS[system]:
        importlib.import_module(module)
    if mode == "run":
        # Warm up (imports, first connections) on another database.
        warm = folder / "warm"
        warm.mkdir(exist_ok=True)
        asyncio.run(RUNS[system](warm / path.name, 5, uuid.uuid4().hex, variant))
        seconds = asyncio.run(RUNS[system](path, n_turns, run_id, variant))
        print(json.dumps({"seconds": seconds, "files": disk_bytes(path)}))
    elif mode == "crash":
        KILL_AT.append(kill_at)
        asyncio.run(RUNS[system](path, n_turns, run_id, variant))
        print(json.dumps({"error": "the SIGKILL did not happen"}))
    elif mode == "resume":
        began = asyncio.run(RESUMES[system](path, n_turns, run_id, variant))
        moment, index = FIRST_NEW[0]
        print(json.dumps({"first_new": moment - began, "index": index}))


def spawn(variant: str, mode: str, directory: Path, n: int, k: int, run_id: str) -> dict[str, Any]:
    command = "from benchmarks.bench_agent import child; child()"
    out = subprocess.run(
        [sys.executable, "-c", command, variant, mode, str(directory), str(n), str(k), run_id],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={**os.environ, "DBOS__CLOUD": "false"},
    )
    if mode == "crash":
        if out.returncode != -signal.SIGKILL:
            raise RuntimeError(
                f"{variant} crash run ended with {out.returncode}:\n{out.stderr[-3000:]}"
            )
        return {}
    if out.returncode != 0:
        raise RuntimeError(f"{variant} {mode} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def unavailable(system: str) -> str | None:
    """None if the peer can run here, else why not."""
    for module in IMPORTS[system]:
        try:
            importlib.import_module(module)
        except ImportError as error:
            return f"cannot import {module} ({error}); pip install -e '.[bench]'"
    return None


def fastest(samples: dict[str, Sample], variants: list[str]) -> Sample:
    return min((samples[v] for v in variants if v in samples), key=lambda s: s.median)


def main() -> None:
    args = arguments(__doc__ or "")
    n = 100 if args.quick else 1000
    runs = 2 if args.quick else 3
    k = n // 2
    payload = payload_bytes(n)
    title = f"Agent loop: {n:,} turns, one ~200-byte message each, SQLite"
    missing = {}
    for system in SYSTEMS:
        why = unavailable(system)
        if why is not None:
            missing[system] = why
            print(f"  peer not run: {system}: {why}")
    resumers = [v for v in VARIANTS if system_of(v) not in missing]
    runners = [v for v in resumers if not v.endswith("-byid")]

    with tempfile.TemporaryDirectory(prefix="resumable-bench-agent-") as tmp:
        root = Path(tmp)
        sizes: dict[str, list[dict[str, int]]] = {v: [] for v in runners}
        indexes: dict[str, list[int]] = {v: [] for v in resumers}

        def full_run(variant: str) -> float:
            folder = Path(tempfile.mkdtemp(dir=root))
            result = spawn(variant, "run", folder, n, k, uuid.uuid4().hex)
            sizes[variant].append(result["files"])
            return result["seconds"] / n

        def crash_and_resume(variant: str) -> float:
            folder = Path(tempfile.mkdtemp(dir=root))
            run_id = uuid.uuid4().hex
            crashed = "dbos" if variant == "dbos-byid" else variant
            spawn(crashed, "crash", folder, n, k, run_id)
            result = spawn(variant, "resume", folder, n, k, run_id)
            indexes[variant].append(result["index"])
            return result["first_new"]

        per_turn = interleaved(runs, {v: (lambda v=v: full_run(v)) for v in runners})
        first_new = interleaved(runs, {v: (lambda v=v: crash_and_resume(v)) for v in resumers})

    times = Report(f"{title}: microseconds per turn", args.quick)
    disk = Report(f"{title}: bytes on disk after the run", args.quick)
    resumes = Report(f"{title}: SIGKILL at turn {k:,}, resume in a fresh process", args.quick)
    t = {v: times.add(Sample(f"{VARIANTS[v]}", per_turn[v])) for v in runners}
    b = {
        v: disk.add(Sample(f"{VARIANTS[v]}", [sum(f.values()) for f in sizes[v]], "B"))
        for v in runners
    }
    r = {v: resumes.add(Sample(f"{VARIANTS[v]}", first_new[v])) for v in resumers}
    for peer in [s for s in SYSTEMS if s != "resumable" and s not in missing]:
        times.target(
            f"us/turn resumable / {peer}",
            t["resumable"].median / fastest(t, PEERS[peer]).median,
            1.0,
        )
        disk.target(
            f"bytes on disk resumable / {peer}",
            b["resumable"].median / fastest(b, PEERS[peer]).median,
            1.0,
        )
        resumes.target(
            f"resume to first new turn resumable / {peer}",
            r["resumable"].median / fastest(r, PEERS[peer]).median,
            1.0,
        )
    for report in (times, disk, resumes):
        report.notes += [f"peer not run: {s}: {why}" for s, why in missing.items()]
    times.notes.append("wall time of the whole run / turns, in a warmed-up fresh process")
    for peer, variants in PEERS.items():
        if peer not in missing:
            times.notes.append(f"a target against {peer} takes the fastest of {variants}")
    for v in runners:
        files = ", ".join(f"{name} {size:,}" for name, size in sizes[v][-1].items())
        disk.notes.append(f"{v}: {b[v].median / payload:.1f}x the payload ({files})")
    disk.notes.append(
        f"payload: {payload:,} bytes (the {n:,} messages' compact JSON, summed); counted: the "
        "database file plus any -wal, -shm and -journal file, after closing the "
        "store / saver / DBOS"
    )
    for v in resumers:
        lost = sorted({k - i for i in indexes[v]})
        resumes.notes.append(
            f"{v}: first new turn {sorted(set(indexes[v]))}, so {lost} finished turn(s) ran again"
        )
    resumes.notes.append(
        "timed in a fresh process from the resume call (resumable: resume(id, store=url); "
        "LangGraph: opening AsyncSqliteSaver, then ainvoke(None) on the same thread_id; DBOS: "
        "DBOS.launch(), whose startup recovery re-enqueues the PENDING workflow for the queue "
        "thread; dbos-byid: DBOS.resume_workflow_async(id) after launch) to the start of the "
        "first turn that was not checkpointed"
    )
    times.show("us", scale=1e6, digits=1)
    disk.show("bytes", digits=0)
    resumes.show("ms", scale=1e3, digits=1)
    combined = Report(title, args.quick)
    for part in (times, disk, resumes):
        combined.samples += part.samples
        combined.verdicts += part.verdicts
        combined.notes += part.notes
    combined.save("agent")


if __name__ == "__main__":
    main()
