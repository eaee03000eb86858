"""Progress bars, one line per checkpointed loop and per amap/agather.

Used by `show` (drawn once) and `show --follow` (redrawn in place). Lines are
cut to the terminal width: a wrapped line would break the in-place redraw,
which moves the cursor up by the number of lines drawn before. Names and
places come from the store and are escaped (`safe.text`) before they are
measured, so a line cut to the width stays cut.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from resumable._cli import safe
from resumable._cli.formatting import span, where
from resumable.runtime.wire import FanoutProgress, LoopProgress, Progress, position_order

Entry = LoopProgress | FanoutProgress

MAX_LINES = 12  # progress lines per frame; the rest is summarised in one line
BAR_MIN, BAR_GOOD, BAR_MAX = 10, 24, 40


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
    return f"{nested}{safe.text(kind):<7} {safe.text(entry.position):<4} {safe.text(entry.site)}"


def _core(entry: Entry) -> str:
    """'152/200   76%', or '152 done' when the total is unknown."""
    if entry.total is None:
        return f"{entry.done} done" + (", finished" if entry.finished else "")
    percent = 100 * (entry.done + _failed(entry)) // entry.total if entry.total else 100
    return f"{entry.done}/{entry.total}  {percent:>3}%"


def _extras(entry: Entry, rate: float | None) -> list[tuple[str, str]]:
    """(separator, text) pieces after the counts, most important first: a
    narrow terminal drops them from the end."""
    extras = []
    if isinstance(entry, FanoutProgress):
        extras.append(("  ", f"{entry.in_flight} running"))
        if entry.pending is not None:
            extras.append((", ", f"{entry.pending} pending"))
        extras.append((", ", f"{entry.failed} failed"))
    if rate is not None and not entry.finished:
        extras.append(("  ", f"{rate:.1f}/s"))
        if entry.total is not None:
            left = entry.total - entry.done - _failed(entry)
            extras.append(("  ", f"eta {span(left / rate)}"))
    return extras


def _widest_extras(entry: Entry) -> int:
    """The extras' width with every count as wide as the total, and without
    the rate and eta, which come and go: so the bar keeps its width from
    one frame to the next."""
    if not isinstance(entry, FanoutProgress):
        return 0
    widest = entry.total if entry.total is not None else entry.done + entry.in_flight
    pending = f", {widest} pending" if entry.total is not None else ""
    return len(f"  {widest} running{pending}, {widest} failed")


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
    cut: bool = True,
) -> list[str]:
    """One line per shown entry in aligned columns: what, where, bar, counts,
    then extras. With `cut` (a redrawn frame must not wrap) lines stay within
    `width`: the bar shrinks first, then extras are dropped from the end."""
    entries, hidden = visible(ordered(progress))
    labels = [_label(e) for e in entries]
    places = [safe.text(where(e.location)) if show_location else "" for e in entries]
    cores = [_core(e) for e in entries]
    extras = [
        _extras(e, rates.observe(e.position, e.done + _failed(e)) if rates else None)
        for e in entries
    ]
    label_width = max(map(len, labels), default=0)
    place_width = max(map(len, places), default=0)
    core_width = max(map(len, cores), default=0)
    extra_width = max(map(_widest_extras, entries), default=0)
    fixed = 2 + label_width + (2 + place_width if show_location else 0) + 2 + core_width
    room = width - 1 - fixed - 4  # the bar's brackets and the two gaps around it
    # The bar gets BAR_GOOD columns before extras get any, then extras, then more bar.
    bar_width = min(BAR_MAX, max(min(BAR_GOOD, room), room - extra_width)) if room >= BAR_MIN else 0
    drawn = []
    for entry, label, place, core, more in zip(entries, labels, places, cores, extras, strict=True):
        line = f"  {label:<{label_width}}"
        if show_location:
            line += f"  {place:<{place_width}}"
        if bar_width:
            line += f"  {bar(entry, bar_width, glyphs) if entry.total else '':<{bar_width + 2}}"
        line += f"  {core:>{core_width}}"
        for separator, extra in more:
            if cut and len(line) + len(separator) + len(extra) > width - 1:
                break
            line += separator + extra
        drawn.append(line.rstrip()[: max(width - 1, 20)] if cut else line.rstrip())
    if hidden:
        drawn.append(f"  ... and {hidden} more (finished nested loops and maps: see --json)")
    if not entries and progress.unreadable:
        note = (
            f"  progress unreadable: {progress.unreadable} record(s) could not be decoded "
            f"({safe.text(progress.first_error)})"
        )
        drawn.append(note[: max(width - 1, 20)] if cut else note)
    elif not entries:
        drawn.append("  no checkpoint yet")
    return drawn
