"""Progress bars, one line per checkpointed loop and per amap/agather.

Used by `show` (drawn once) and `show --follow` (redrawn in place). Lines are
cut to the terminal width: a wrapped line would break the in-place redraw,
which moves the cursor up by the number of lines drawn before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from resumable._api import FanoutProgress, LoopProgress, Progress, position_order
from resumable._cli.formatting import span, where

Entry = LoopProgress | FanoutProgress

MAX_LINES = 12  # progress lines per frame; the rest is summarised in one line
BAR_MIN, BAR_MAX = 10, 40


@dataclass(frozen=True, slots=True)
class Glyphs:
    done: str
    running: str
    todo: str
    failed: str

    @classmethod
    def for_encoding(cls, encoding: str | None) -> Glyphs:
        try:
            "█▒░".encode(encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            return cls(done="#", running="~", todo=".", failed="x")
        return cls(done="█", running="▒", todo="░", failed="x")


class Rates:
    """Items per second per position, measured while following: from the
    first sample seen to the latest one, once at least a second apart."""

    def __init__(self) -> None:
        self._first: dict[str, tuple[float, int]] = {}

    def observe(self, position: str, done: int, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        first = self._first.setdefault(position, (now, done))
        elapsed = now - first[0]
        if elapsed < 1.0 or done <= first[1]:
            return None
        return (done - first[1]) / elapsed


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
    return f"{nested}{kind:<7} {entry.position:<4} {entry.site}"


def _counts(entry: Entry, rate: float | None) -> str:
    done = entry.done
    total = entry.total
    text = f"{done}/{total}" if total is not None else f"{done} done"
    if total:
        text += f"  {100 * (done + _failed(entry)) // total:>3}%"
    if isinstance(entry, FanoutProgress):
        extra = [f"{entry.in_flight} running"]
        if entry.pending is not None:
            extra.append(f"{entry.pending} pending")
        extra.append(f"{entry.failed} failed")
        text += "  " + ", ".join(extra)
    elif entry.finished and total is None:
        text += ", finished"
    if rate is not None and not entry.finished:
        text += f"  {rate:.1f}/s"
        if total is not None:
            text += f"  eta {span((total - done - _failed(entry)) / rate)}"
    return text


def _failed(entry: Entry) -> int:
    return entry.failed if isinstance(entry, FanoutProgress) else 0


def bar(entry: Entry, width: int, glyphs: Glyphs) -> str:
    """[████▒▒░░░░]: done, running (amap/agather), still to do."""
    total = entry.total
    if not total:
        return ""
    finished = total if entry.finished and isinstance(entry, LoopProgress) else entry.done
    failed = _failed(entry)
    running = entry.in_flight if isinstance(entry, FanoutProgress) else 0
    cells = [
        (glyphs.done, finished),
        (glyphs.failed, failed),
        (glyphs.running, running),
    ]
    drawn = ""
    used = 0
    for glyph, count in cells:
        n = min(width - used, round(width * count / total))
        if count and n == 0 and used < width:
            n = 1  # one failure or one running item is still visible
        drawn += glyph * n
        used += n
    return "[" + drawn + glyphs.todo * (width - used) + "]"


def lines(
    progress: Progress,
    width: int,
    glyphs: Glyphs,
    rates: Rates | None = None,
    *,
    show_location: bool = True,
) -> list[str]:
    """One line per shown entry, columns aligned, cut to `width`."""
    entries, hidden = visible(ordered(progress))
    lefts = [_label(e) + (f"  {where(e.location)}" if show_location else "") for e in entries]
    rights = [
        _counts(e, rates.observe(e.position, e.done + _failed(e)) if rates else None)
        for e in entries
    ]
    left_width = max((len(text) for text in lefts), default=0)
    right_width = max((len(text) for text in rights), default=0)
    # "  LEFT  [BAR]  RIGHT", kept one column short of the terminal's width.
    bar_width = min(BAR_MAX, width - 1 - left_width - right_width - 8)
    drawn = []
    for entry, left, right in zip(entries, lefts, rights, strict=True):
        shape = bar(entry, bar_width, glyphs) if bar_width >= BAR_MIN else ""
        middle = f"{shape:<{bar_width + 2}}  " if bar_width >= BAR_MIN else ""
        line = f"  {left:<{left_width}}  {middle}{right}"
        drawn.append(line.rstrip()[: max(width - 1, 20)])
    if hidden:
        drawn.append(f"  ... and {hidden} more (finished nested loops and maps: see --json)")
    if not entries and progress.unreadable:
        drawn.append(
            f"  progress unreadable: {progress.unreadable} record(s) could not be decoded "
            f"({progress.first_error})"[: max(width - 1, 20)]
        )
    elif not entries:
        drawn.append("  no checkpoint yet")
    return drawn
