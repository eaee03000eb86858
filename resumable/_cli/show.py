"""`resumable show ID [--follow]`: one execution, once or live.

Everything shown is read from the store: the execution record and the
headers of its checkpoint records (`Store.load_headers`), which already hold
each loop's index and each amap/agather's item counts; item outcomes and
carried values are never read. Following an execution therefore works from
any process or machine that can read the store, and costs the running
execution nothing: no extra writes, no messages. Every piece of text from
the store is escaped (`safe.text`) before it is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from resumable import _config
from resumable._cli import formatting as fmt
from resumable._cli import progress, safe, values
from resumable._cli.console import console_for, emit, render_text
from resumable._cli.exitcodes import CommandError, ExitCode
from resumable._executions import ExecutionStatus, Snapshot, snapshot
from resumable.errors import ResumableError
from resumable.stores.base import Store
from resumable.stores.statuses import STATUSES

LABEL = 11  # width of the field names in `show`


async def show(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    if args.follow:
        return await follow(store, args.id, out, args.interval, as_json=args.json)
    snap = await snapshot(args.id, store, relations=True)
    decoded, failure = _values(snap, store) if args.values else ([], None)
    if args.json:
        data = show_json(snap)
        if args.values:
            data["values"] = [{"name": name, "repr": text} for name, text in decoded]
            data["values_error"] = None if failure is None else str(failure)
        fmt.dump(data, out)
    else:
        emit(out, *show_view(snap))
        if args.values:
            out.write("values\n")
            for name, text in decoded:
                out.write(f"  {safe.text(name)}  {safe.text(text)}\n")
            if failure is not None:
                out.write(f"  <undecodable: {type(failure).__name__}, see the error below>\n")
    if failure is not None:  # all else is shown; the exit code says the values are not
        raise failure
    return ExitCode.OK


def _values(
    snap: Snapshot, store: Store
) -> tuple[list[tuple[str, str]], ResumableError | CommandError | None]:
    """The decoded arguments, or the one-line error that says why they
    cannot be (`--values` unpickles, so anything may go wrong). The store's
    key reads them, resolved as a run resolves it (SecretKeyRequired, and a
    refused key file, are errors like any other here)."""
    try:
        return values.values(snap.record.args, _config.codec_for(store), snap.record.id), None
    except ResumableError as exc:
        return [], exc
    except Exception as exc:
        return [], CommandError(
            f"cannot decode the arguments of execution {snap.record.id!r}: "
            f"{type(exc).__name__}: {exc}",
            ExitCode.CORRUPT,
        )


def _arguments(snap: Snapshot) -> tuple[list[tuple[str, str]], str | None]:
    try:
        return values.summary(snap.record.args), None
    except Exception as exc:  # a foreign or damaged blob: say so, show the rest
        return [], f"cannot describe them: {exc}"


def show_view(snap: Snapshot) -> list[RenderableType]:
    """What `show` prints: one line per field, the progress rows, the
    children and the error. Lines are printed as they are (a terminal wraps
    a long one); only the progress rows are fitted to the width."""
    before, after = _show_lines(snap)
    lines = [Text(line, no_wrap=True, overflow="ignore") for line in before]
    rest = [Text(line, no_wrap=True, overflow="ignore") for line in after]
    return [*lines, progress.Bars().view(snap.progress), *rest]


def _show_lines(snap: Snapshot) -> tuple[list[str], list[str]]:
    view = snap.status
    now = time.time()

    def field(name: str, text: str) -> str:
        return f"{name:<{LABEL}} {safe.text(text)}"

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
    ]
    if view.unsigned:
        written = (
            "unsigned: written without a key (by an older release, which did not sign "
            "records), so its records are refused while a key is set; "
        )
        out.append(field("signing", written + fmt.unsigned_hint(view.id)))
    out += [
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
    ran = fmt.ran_text(view, now)
    total = fmt.span((finished or now) - view.created_at)
    out.append(field("ran", f"{ran} (latest attempt), {total} since created"))
    out.append("progress")
    after: list[str] = []
    if snap.children:
        after.extend(_children_lines(snap.children, field))
    if view.error:
        after.append(field("error", fmt.error_line(view.error) or ""))
        # Split at newlines only: any other line break is escaped, not obeyed.
        after.extend("  " + safe.text(line) for line in view.error.rstrip().split("\n"))
    return out, after


SHOWN_CHILDREN = 20  # child executions listed by `show`; --json lists them all


def _children_lines(
    kids: tuple[ExecutionStatus, ...], field: Callable[[str, str], str]
) -> list[str]:
    counts = Counter(kid.status for kid in kids)
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    lines = [field("children", f"{len(kids)} ({summary})")]
    # Escaped before padding (the widths are of what is printed), so not by field().
    shown = [
        (safe.text(kid.id), safe.text(kid.name), safe.text(fmt.state(kid)))
        for kid in kids[:SHOWN_CHILDREN]
    ]
    id_width = max(len(kid_id) for kid_id, _, _ in shown)
    name_width = max(len(name) for _, name, _ in shown)
    for kid_id, name, state in shown:
        lines.append(f"{'':<{LABEL}} {kid_id:<{id_width}}  {name:<{name_width}}  {state}")
    if len(kids) > len(shown):
        lines.append(field("", f"... and {len(kids) - len(shown)} more (--json lists them all)"))
    return lines


def show_json(snap: Snapshot) -> dict[str, Any]:
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
    return data


# -- --follow ------------------------------------------------------------------


def frame(snap: Snapshot, bars: progress.Bars) -> RenderableType:
    """One frame of `--follow`: a head line, the progress rows, and how it ended."""
    view = snap.status
    head = f"{safe.text(view.name)}  {safe.text(view.id)}  {safe.text(fmt.state(view))}"
    if view.attempts > 1:
        head += f"  attempt {view.attempts}"
    if view.status == "running":
        if not view.orphaned:
            head += f"  {safe.text(fmt.owner(view))}"
        head += f"  ran {fmt.ran_text(view)}"
    rows: list[RenderableType] = [Text(head, no_wrap=True, overflow="ellipsis")]
    rows.append(bars.view(snap.progress))
    ran = fmt.ran_text(view)
    if view.status == "completed":
        rows.append(Text(f"completed in {ran}"))
    elif view.status in ("failed", "cancelled"):
        why = fmt.error_line(view.error)
        ended = f"{safe.text(view.status)} after {ran}"
        rows.append(Text(ended + (f": {safe.text(why)}" if why else "")))
    elif view.orphaned:
        rows.append(
            Text(
                f"waiting: its owner is gone; `resumable resume {safe.text(view.id)}` continues it"
            )
        )
    return Group(*rows)


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
    On a terminal the frame is redrawn in place (rich's `Live`); into a
    pipe or a file, a frame is printed only when the progress changed; with
    `as_json`, one line of JSON (the `show --json` object) per change. Exit
    code: 0 if the execution completed, 1 if it failed or was cancelled."""
    console = console_for(out)
    bars = progress.Bars(show_location=False)
    if console.is_terminal and not as_json:
        # Redrawn when we say, not by rich's own thread: each frame is a
        # fresh read of the store. redirect_*: the library's log lines on
        # stderr are the application's business, not ours to capture.
        live = Live(
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="visible",
        )
        with live:
            # The last frame is drawn by the Live's exit, once.
            return await _poll(
                store,
                execution_id,
                interval,
                lambda snap: live.update(
                    frame(snap, bars), refresh=snap.status.status == "running"
                ),
            )
    last: list[tuple[object, ...]] = []

    def printed(snap: Snapshot) -> None:
        key = _change_key(snap)
        if last and key == last[0]:
            return
        last[:] = [key]
        if as_json:
            out.write(safe.json(show_json(snap), indent=None) + "\n")
        else:
            _print_stamped(console, frame(snap, bars))
        out.flush()

    return await _poll(store, execution_id, interval, printed)


def _print_stamped(console: Console, drawn: RenderableType) -> None:
    """A frame into a pipe or a file, behind the time it was read."""
    text = render_text(drawn, console.width, console.encoding).rstrip("\n")
    console.file.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")


async def _poll(
    store: Store, execution_id: str, interval: float, draw: Callable[[Snapshot], None]
) -> int:
    while True:
        snap = await snapshot(execution_id, store)
        draw(snap)
        if snap.status.status != "running":
            completed = snap.status.status == "completed"
            return ExitCode.OK if completed else ExitCode.EXECUTION_FAILED
        await asyncio.sleep(interval)
