"""Progress bars, one row per checkpointed loop and per amap/agather, drawn by rich.

Used by `show` (drawn once), `show --follow` (redrawn in place by
`rich.live.Live`) and `resumable demo`. One `Bars` object lives as long as
the drawing: it keeps one rich task per position, so rich measures each
one's speed and time left from the counts it was given over time. Rich
also does the column budgeting: on a narrow terminal the name and the
extras are cut with an ellipsis rather than wrapped. Names and places come
from the store and are escaped (`safe.text`) before rich sees them, and no
column parses markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TextColumn
from rich.progress import Progress as RichProgress
from rich.table import Column, Table
from rich.text import Text

from resumable._cli import safe
from resumable._cli.console import UNBOUNDED
from resumable._cli.formatting import span, where
from resumable.runtime.wire import FanoutProgress, LoopProgress, Progress, position_order

Entry = LoopProgress | FanoutProgress

MAX_LINES = 12  # progress rows per frame; the rest is summarised in one line
BAR_WIDTH, BAR_MIN = 30, 10


def ordered(progress: Progress) -> list[Entry]:
    entries: list[Entry] = [*progress.loops, *progress.fanouts]
    return sorted(entries, key=lambda entry: position_order(entry.position))


def visible(entries: Sequence[Entry], limit: int = MAX_LINES) -> tuple[list[Entry], int]:
    """Top-level helpers always; nested ones (inside an iteration or an
    item) only while unfinished, since a loop of loops leaves one finished
    record per outer iteration. Returns (shown, how many were left out)."""
    shown = [e for e in entries if "/" not in e.position or not e.finished]
    shown = shown[:limit]
    return shown, len(entries) - len(shown)


def _label(entry: Entry) -> str:
    kind = "loop" if isinstance(entry, LoopProgress) else entry.kind
    nested = "  " * entry.position.count("/")
    return f"  {nested}{safe.text(kind):<7} {safe.text(entry.position):<4} {safe.text(entry.site)}"


def _failed(entry: Entry) -> int:
    return entry.failed if isinstance(entry, FanoutProgress) else 0


def _counts(entry: Entry) -> str:
    """'152/200   76%', or '152 done' when the total is unknown."""
    if entry.total is None:
        return f"{entry.done} done" + (", finished" if entry.finished else "")
    percent = 100 * (entry.done + _failed(entry)) // entry.total if entry.total else 100
    return f"{entry.done}/{entry.total}  {percent:>3}%"


def _tally(entry: Entry) -> str:
    """An amap/agather's items by state: '8 running, 88 pending, 0 failed'."""
    if not isinstance(entry, FanoutProgress):
        return ""
    pending = f", {entry.pending} pending" if entry.pending is not None else ""
    return f"{entry.in_flight} running{pending}, {entry.failed} failed"


class _Bar(ProgressColumn):
    """rich's bar, or nothing when the total is unknown (rich would pulse)."""

    def __init__(self, bar_width: int) -> None:
        self.bar_width = bar_width
        super().__init__()

    def render(self, task: Task) -> RenderableType:
        if task.total is None:
            return Text("")
        return BarColumn(bar_width=self.bar_width).render(task)


class _Field(ProgressColumn):
    """One of the task's fields as plain text (never markup)."""

    def __init__(self, name: str, *, justify: str = "left") -> None:
        self.name = name
        column = Column(no_wrap=True, overflow="ellipsis", justify=justify)  # type: ignore[arg-type]
        super().__init__(table_column=column)

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get(self.name, "")))


class _Pace(ProgressColumn):
    """Items per second and the time left, once rich has measured them
    (two samples of progress while following); nothing for an ended task."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis"))

    def render(self, task: Task) -> Text:
        speed = task.speed
        if task.fields.get("ended") or not speed:
            return Text("")
        shown = f"{speed:.1f}/s"
        if task.time_remaining is not None:
            shown += f"  eta {span(task.time_remaining)}"
        return Text(shown)


class Bars:
    """The progress rows of one execution, kept across frames."""

    def __init__(self, *, show_location: bool = True) -> None:
        self._label = TextColumn(
            "{task.description}",
            markup=False,
            table_column=Column(no_wrap=True, overflow="ellipsis"),
        )
        self._place = _Field("place") if show_location else None
        self._bar = _Bar(BAR_WIDTH)
        self._counts = _Field("counts", justify="right")
        self._tally = _Field("tally")
        self._pace = _Pace()
        self._rich = RichProgress(auto_refresh=False, expand=False)
        self._tasks: dict[str, TaskID] = {}

    def view(self, progress: Progress) -> RenderableType:
        """The rows for `progress` (read from the store just now)."""
        entries, hidden = visible(ordered(progress))
        shown = [self._task(entry) for entry in entries]
        rows: list[RenderableType] = []
        if shown:
            by_id = {task.id: task for task in self._rich.tasks}
            rows.append(_Fitted(self, [by_id[task_id] for task_id in shown]))
        if hidden:
            rows.append(
                Text(f"  ... and {hidden} more (finished nested loops and maps: see --json)")
            )
        if not entries and progress.unreadable:
            rows.append(
                Text(
                    f"  progress unreadable: {progress.unreadable} record(s) could not be "
                    f"decoded ({safe.text(progress.first_error)})",
                    no_wrap=True,
                    overflow="ellipsis",
                )
            )
        elif not entries:
            rows.append(Text("  no checkpoint yet"))
        return Group(*rows)

    def table(
        self, tasks: list[Task], width: int, console: Console, options: ConsoleOptions
    ) -> Table:
        """The rows as wide as they can be within `width`: what gives way
        first is the speed and eta, then the item tally, then the bar
        (down to BAR_MIN, then gone); the name is cut last, by rich."""
        head = [self._label] + ([self._place] if self._place else [])
        layouts: list[list[ProgressColumn]] = [
            [*head, self._bar, self._counts, self._tally, self._pace],
            [*head, self._bar, self._counts, self._tally],
            [*head, self._bar, self._counts],
        ]
        unbounded = options.update_width(UNBOUNDED)  # rich clamps a measure to the width
        for columns in layouts:
            for bar_width in range(BAR_WIDTH, BAR_MIN - 1, -5):
                self._bar.bar_width = bar_width
                grid = self._grid(columns, tasks)
                if Measurement.get(console, unbounded, grid).maximum <= width:
                    return grid
        return self._grid([*head, self._counts], tasks)

    def _grid(self, columns: list[ProgressColumn], tasks: list[Task]) -> Table:
        self._rich.columns = tuple(columns)
        grid = self._rich.make_tasks_table(tasks)
        grid.collapse_padding = False  # two blanks between columns, as `list` has
        return grid

    def _task(self, entry: Entry) -> TaskID:
        """The rich task of `entry`'s position, brought up to date."""
        finished = entry.finished and isinstance(entry, LoopProgress) and entry.total is not None
        completed = entry.total if finished else entry.done + _failed(entry)
        fields: dict[str, Any] = {
            "place": safe.text(where(entry.location)),
            "counts": _counts(entry),
            "tally": _tally(entry),
            "ended": entry.finished,
        }
        task_id = self._tasks.get(entry.position)
        if task_id is None:
            task_id = self._tasks[entry.position] = self._rich.add_task(
                _label(entry), total=entry.total, completed=completed or 0, **fields
            )
        else:
            self._rich.update(task_id, total=entry.total, completed=completed, **fields)
        return task_id


class _Fitted:
    """The rows, laid out when rich knows the width they have."""

    def __init__(self, bars: Bars, tasks: list[Task]) -> None:
        self._bars = bars
        self._tasks = tasks

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._bars.table(self._tasks, options.max_width, console, options)
