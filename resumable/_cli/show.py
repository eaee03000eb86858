"""`resumable show ID [--follow]`: one execution, once or live.

Everything shown is read from the store: the execution record and the
headers of its checkpoint records (`Store.load_headers`), which already hold
each loop's index and each amap/agather's item counts; item outcomes and
carried values are never read. Following an execution therefore works from
any process or machine that can read the store, and costs the running
execution nothing: no extra writes, no messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

from resumable import _config
from resumable._api import ExecutionStatus, Snapshot, snapshot
from resumable._cli import formatting as fmt
from resumable._cli import progress, values
from resumable._cli.exitcodes import ExitCode
from resumable.stores.base import STATUSES, Store

LABEL = 11  # width of the field names in `show`


def _width(out: TextIO) -> int:
    """The terminal's width; into a pipe or file, enough for 30-cell bars."""
    return shutil.get_terminal_size((100, 24)).columns if out.isatty() else 160


async def show(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    if args.follow:
        return await follow(store, args.id, out, args.interval, as_json=args.json)
    snap = await snapshot(args.id, store, relations=True)
    if args.json:
        fmt.dump(show_json(snap, with_values=args.values), out)
    else:
        for line in show_lines(snap, _width(out), progress.Glyphs.for_encoding(out.encoding)):
            out.write(line + "\n")
        if args.values:
            _write_values(snap, out)
    return ExitCode.OK


def _arguments(snap: Snapshot) -> tuple[list[tuple[str, str]], str | None]:
    try:
        return values.summary(snap.record.args), None
    except Exception as exc:  # a foreign or damaged blob: say so, show the rest
        return [], f"cannot describe them: {exc}"


def show_lines(snap: Snapshot, width: int, glyphs: progress.Glyphs) -> list[str]:
    view = snap.status
    now = time.time()

    def field(name: str, text: str) -> str:
        return f"{name:<{LABEL}} {text}"

    out = [
        field("execution", view.id),
        field("function", f"{view.name} ({view.function})"),
    ]
    if view.parent_id is not None:
        parent = snap.parent
        out.append(
            field(
                "parent",
                f"{parent.id}  {parent.name}  {fmt.state(parent)}"
                if parent is not None
                else f"{view.parent_id} (no longer in the store)",
            )
        )
    out += [
        field("code", fmt.where(view.location)),
        field("status", fmt.state(view)),
        field("attempts", str(view.attempts)),
        field("owner", fmt.owner(view)),
    ]
    described, problem = _arguments(snap)
    size = values.size(snap.record.args)
    if problem:
        out.append(field("arguments", f"{problem} ({size} stored)"))
    elif not described:
        out.append(field("arguments", f"none ({size} stored)"))
    else:
        name_width = max(len(name) for name, _ in described)
        for i, (name, text) in enumerate(described):
            out.append(field("arguments" if i == 0 else "", f"{name:<{name_width}}  {text}"))
        out.append(field("", f"({size} stored; values hidden, see --values)"))
    out.append(field("created", f"{fmt.when(view.created_at)} ({fmt.ago(view.created_at, now)})"))
    out.append(field("started", fmt.when(view.started_at)))
    finished = view.finished_at if view.status != "running" else None
    out.append(field("finished", fmt.when(finished)))
    ran = fmt.span(fmt.ran_for(view, now))
    total = fmt.span((finished or now) - view.created_at)
    out.append(field("ran", f"{ran} (latest attempt), {total} since created"))
    out.append("progress")
    out.extend(progress.lines(snap.progress, width, glyphs, cut=False))
    if snap.children:
        out.extend(_children_lines(snap.children, field))
    if view.error:
        out.append(field("error", fmt.error_line(view.error) or ""))
        out.extend("  " + line for line in view.error.rstrip().splitlines())
    return out


SHOWN_CHILDREN = 20  # child executions listed by `show`; --json lists them all


def _children_lines(
    kids: tuple[ExecutionStatus, ...], field: Callable[[str, str], str]
) -> list[str]:
    counts = Counter(kid.status for kid in kids)
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    lines = [field("children", f"{len(kids)} ({summary})")]
    shown = kids[:SHOWN_CHILDREN]
    id_width = max(len(kid.id) for kid in shown)
    name_width = max(len(kid.name) for kid in shown)
    for kid in shown:
        row = f"{kid.id:<{id_width}}  {kid.name:<{name_width}}  {fmt.state(kid)}"
        lines.append(field("", row))
    if len(kids) > len(shown):
        lines.append(field("", f"... and {len(kids) - len(shown)} more (--json lists them all)"))
    return lines


def _write_values(snap: Snapshot, out: TextIO) -> None:
    out.write("values\n")
    decoded = values.values(snap.record.args, _config.codec(), snap.record.id)
    for name, text in decoded:
        out.write(f"  {name}  {text}\n")


def show_json(snap: Snapshot, *, with_values: bool) -> dict[str, Any]:
    described, problem = _arguments(snap)
    data = fmt.execution_json(snap.status)
    data.update(
        traceback=snap.status.error,
        arguments=[{"name": name, "type": text} for name, text in described],
        arguments_error=problem,
        arguments_bytes=len(snap.record.args),
        loops=[fmt.loop_json(loop) for loop in snap.status.progress],
        fanouts=[fmt.fanout_json(fanout) for fanout in snap.status.fanouts],
        unreadable_records=snap.progress.unreadable,
    )
    if snap.children is not None:  # read for `show`; `--follow` does not (see Snapshot)
        data["children"] = [fmt.execution_json(kid) for kid in snap.children]
    if with_values:
        decoded = values.values(snap.record.args, _config.codec(), snap.record.id)
        data["values"] = [{"name": name, "repr": text} for name, text in decoded]
    return data


# -- --follow ------------------------------------------------------------------

HIDE_CURSOR, SHOW_CURSOR, CLEAR_BELOW = "\x1b[?25l", "\x1b[?25h", "\x1b[J"


def _up(lines: int) -> str:
    return f"\r\x1b[{lines}A" if lines else "\r"


def frame(
    snap: Snapshot,
    width: int,
    glyphs: progress.Glyphs,
    rates: progress.Rates,
    *,
    tty: bool = True,
) -> list[str]:
    view = snap.status
    head = f"{view.name}  {view.id}  {fmt.state(view)}"
    if view.attempts > 1:
        head += f"  attempt {view.attempts}"
    if view.status == "running":
        if not view.orphaned:
            head += f"  {fmt.owner(view)}"
        head += f"  ran {fmt.span(fmt.ran_for(view))}"
    lines = [head[: max(width - 1, 20)] if tty else head]
    lines.extend(progress.lines(snap.progress, width, glyphs, rates, show_location=False, cut=tty))
    ran = fmt.span(fmt.ran_for(view))
    if view.status == "completed":
        lines.append(f"completed in {ran}")
    elif view.status in ("failed", "cancelled"):
        why = fmt.error_line(view.error)
        lines.append(f"{view.status} after {ran}" + (f": {why}" if why else ""))
    elif view.orphaned:
        lines.append(f"waiting: its owner is gone; `resumable resume {view.id}` continues it")
    return lines


def _change_key(snap: Snapshot) -> tuple[object, ...]:
    """What a non-terminal follower prints a new frame for (not the clock)."""
    entries = progress.ordered(snap.progress)
    counts = tuple(
        (e.position, e.done, getattr(e, "failed", 0), getattr(e, "in_flight", 0), e.finished)
        for e in entries
    )
    return (snap.status.status, snap.status.orphaned, snap.status.attempts, counts)


async def follow(
    store: Store, execution_id: str, out: TextIO, interval: float, *, as_json: bool = False
) -> int:
    """Redraw the frame every `interval` seconds until the execution ends.
    On a terminal the frame is redrawn in place; into a pipe or a file, a
    frame is printed only when the progress changed; with `as_json`, one
    line of JSON (the `show --json` object) per change. Exit code: 0 if the
    execution completed, 1 if it failed or was cancelled."""
    tty = out.isatty() and not as_json
    glyphs = progress.Glyphs.for_encoding(out.encoding)
    rates = progress.Rates()
    drawn = 0
    last: tuple[object, ...] | None = None
    if tty:
        out.write(HIDE_CURSOR)
    try:
        while True:
            snap = await snapshot(execution_id, store)
            lines = frame(snap, _width(out), glyphs, rates, tty=tty)
            if tty:
                out.write(_up(drawn) + CLEAR_BELOW + "\n".join(lines) + "\n")
                drawn = len(lines)
            elif (key := _change_key(snap)) != last:
                last = key
                if as_json:
                    out.write(json.dumps(show_json(snap, with_values=False)) + "\n")
                else:
                    stamp = time.strftime("%H:%M:%S")
                    out.write(f"[{stamp}] " + "\n".join(lines) + "\n")
            out.flush()
            if snap.status.status != "running":
                completed = snap.status.status == "completed"
                return ExitCode.OK if completed else ExitCode.EXECUTION_FAILED
            await asyncio.sleep(interval)
    finally:
        if tty:
            out.write(SHOW_CURSOR)
            out.flush()
