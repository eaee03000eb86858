"""Tables, times and durations for people; stable dicts for `--json`.

JSON keys are part of the command's interface: add keys, never rename or
remove them. Times are Unix seconds (floats) in JSON and local wall-clock
time in tables. Every cell of a table, and all of JSON, goes through `safe`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any, TextIO

from rich.table import Table
from rich.text import Text

from resumable._cli import safe
from resumable._cli.console import emit
from resumable._executions import ExecutionStatus
from resumable.runtime.settings import RENEWALS_PER_LEASE
from resumable.runtime.wire import FanoutProgress, LoopProgress


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def span(seconds: float | None) -> str:
    """1.3s, 4m 05s, 2h 03m, 3d 4h."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def ago(timestamp: float | None, now: float | None = None) -> str:
    if timestamp is None:
        return "-"
    return f"{span((now or time.time()) - timestamp)} ago"


def where(location: str) -> str:
    """A code location relative to the current directory when inside it."""
    path, sep, line = location.rpartition(":")
    if not sep or not os.path.isabs(path):
        return location
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return location
    return location if relative.startswith("..") else f"{relative}:{line}"


def ran_for(view: ExecutionStatus, now: float | None = None) -> float | None:
    """How long the latest attempt ran: so far, if it still runs; until its
    last sign of life (a write or a lease renewal), if its owner is gone.
    For a gone owner that is a lower bound: see `ran_text`."""
    if view.started_at is None:
        return None
    if view.status != "running":
        end = view.finished_at
    elif view.orphaned:
        end = view.updated_at
    else:
        end = None
    return (end or now or time.time()) - view.started_at


def ran_text(view: ExecutionStatus, now: float | None = None) -> str:
    """`ran_for` for people. An owner that died unseen (SIGKILL, a lost
    host) was last heard of at its latest lease renewal (`updated_at`);
    renewals come every ttl/RENEWALS_PER_LEASE, and checkpoint
    writes leave no time in the store, so it died somewhere in the window
    up to the next renewal: shown as that range, not as the lower bound
    alone (which reads "0.0s" for a run killed before its first renewal)."""
    ran = ran_for(view, now)
    if ran is None or not (view.status == "running" and view.orphaned):
        return span(ran)
    ttl = view.lease_expires_at - view.updated_at
    if ttl <= 0:  # released without an end (an old store): all we know is the bound
        return f"at least {span(ran)}"
    latest = min(ran + ttl / RENEWALS_PER_LEASE, (now or time.time()) - (view.started_at or 0.0))
    return f"{span(ran)} to {span(latest)}"


def state(view: ExecutionStatus) -> str:
    """The status, with what a person needs to know about a running one,
    and whether it was written without a key (refused while one is set)."""
    shown = _state(view)
    return f"{shown}, unsigned" if view.unsigned else shown


def _state(view: ExecutionStatus) -> str:
    if view.status != "running":
        return view.status
    if view.orphaned:
        return "running (owner gone)"
    if view.cancel_requested:
        return "running (cancel requested)"
    return "running"


def unsigned_hint(target: str) -> str:
    """What to do about executions written without a key (`list`, `show`)."""
    return (
        f"`resumable migrate --sign {target}` signs them (run it only on a store that only "
        "you have written)"
    )


def owner(view: ExecutionStatus) -> str:
    if view.status != "running" or not view.owner:
        return "-"
    return view.owner_description + (" (gone)" if view.orphaned else "")


def error_line(text: str | None) -> str | None:
    """The last line of a formatted traceback: "ValueError: boom"."""
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO) -> None:
    """A rich table without borders, columns two spaces apart. Cells are
    escaped (`safe.text`) and shown as plain text: one may hold anything a
    store holds, markup included."""
    grid = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, header_style="bold")
    for header in headers[:-1]:
        grid.add_column(header, no_wrap=True, overflow="ellipsis")
    grid.add_column(headers[-1], overflow="fold")
    for row in rows:
        grid.add_row(*(Text(safe.text(cell)) for cell in row))
    emit(out, grid)


def dump(data: object, out: TextIO) -> None:
    out.write(safe.json(data) + "\n")


def execution_json(view: ExecutionStatus, now: float | None = None) -> dict[str, Any]:
    """The keys every JSON view of an execution has (list, show, gc)."""
    return {
        "id": view.id,
        "name": view.name,
        "function": view.function,
        "location": view.location,
        "status": view.status,
        "orphaned": view.orphaned,
        "cancel_requested": view.cancel_requested,
        "attempts": view.attempts,
        "owner": view.owner if view.status == "running" else None,
        "created_at": view.created_at,
        "started_at": view.started_at,
        "finished_at": view.finished_at if view.status != "running" else None,
        "updated_at": view.updated_at,
        "ran_seconds": ran_for(view, now),
        "error": error_line(view.error),
        "parent_id": view.parent_id,
        "unsigned": view.unsigned,
    }


def families(views: Sequence[ExecutionStatus]) -> list[tuple[int, ExecutionStatus]]:
    """`views` (newest first) with each child right after its parent, oldest
    child first, as (depth, view): a child whose parent is not among them
    stays where it was, at depth 0."""
    listed = {view.id for view in views}
    kids: dict[str, list[ExecutionStatus]] = {}
    for view in views:
        if view.parent_id is not None and view.parent_id in listed:
            kids.setdefault(view.parent_id, []).append(view)
    ordered: list[tuple[int, ExecutionStatus]] = []
    placed: set[str] = set()

    def place(view: ExecutionStatus, depth: int) -> None:
        if view.id in placed:  # ids are unique; a cycle cannot be built, but never loop
            return
        placed.add(view.id)
        ordered.append((depth, view))
        for kid in sorted(kids.get(view.id, ()), key=lambda kid: kid.created_at):
            place(kid, depth + 1)

    for view in views:
        if view.parent_id is None or view.parent_id not in listed:
            place(view, 0)
    return ordered


def loop_json(loop: LoopProgress) -> dict[str, Any]:
    return dataclasses.asdict(loop)


def fanout_json(fanout: FanoutProgress) -> dict[str, Any]:
    # pending and finished are derived properties, not fields.
    return {**dataclasses.asdict(fanout), "pending": fanout.pending, "finished": fanout.finished}
