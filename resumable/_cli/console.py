"""The one way the CLI draws: a rich `Console` over the command's output.

Markup, emoji codes and highlighting are off: what the CLI prints comes
from the store (escaped by `safe.text` first) or from its own fixed texts,
and none of it may turn into styles or links. Into a pipe or a file rich
emits no control code at all (it detects that the stream is not a
terminal), and lines are as long as their content: there is no terminal
width to fit, and a cut would hide data from a script.
"""

from __future__ import annotations

import io
import shutil
from typing import TextIO

from rich.console import Console, RenderableType

UNBOUNDED = 100_000  # columns of a pipe or a file: nothing is cut or wrapped


def console_for(out: TextIO) -> Console:
    """A Console writing to `out`: a terminal's width less one column (a
    line that fills the last column makes some terminals wrap early, which
    would break the in-place redraw), or unbounded into a pipe."""
    tty = out.isatty()
    width = shutil.get_terminal_size((100, 24)).columns - 1 if tty else UNBOUNDED
    return Console(
        file=out,
        width=width,
        markup=False,
        emoji=False,
        highlight=False,
        soft_wrap=False,
        # A terminal gets colours; anything else none, even with FORCE_COLOR
        # set in the environment: scripts parse what goes to a pipe.
        force_terminal=tty,
        no_color=not tty,
        color_system="auto" if tty else None,
        legacy_windows=False,
    )


def render_text(renderable: RenderableType, width: int, encoding: str = "utf-8") -> str:
    """What `renderable` looks like on a plain terminal `width` columns
    wide, as text (for tests, and for the timestamped frames of a pipe)."""
    buffer = io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors="backslashreplace")
    console = Console(
        file=buffer,
        width=width,
        markup=False,
        emoji=False,
        highlight=False,
        force_terminal=False,
        no_color=True,
        color_system=None,
        legacy_windows=False,
    )
    with console.capture() as captured:
        console.print(renderable)
    return "".join(line.rstrip() + "\n" for line in captured.get().splitlines())


def emit(out: TextIO, *renderables: RenderableType) -> None:
    """Print `renderables`, one below the other. Into a pipe or a file the
    lines lose the blanks rich pads table cells with, so a script reading
    them gets no trailing whitespace."""
    console = console_for(out)
    if console.is_terminal:
        console.print(*renderables, sep="\n")
        return
    with console.capture() as captured:
        console.print(*renderables, sep="\n")
    out.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
