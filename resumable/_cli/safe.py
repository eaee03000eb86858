"""Text from a store, made safe to print: `text()` for people, `json()` for --json.

A store is input: anyone who can write the SQLite file or the Redis keys
chooses the execution ids, function names, owners, error texts and loop
names the CLI prints. Printed raw, a newline forges a row of `list`, an
escape sequence recolours or retitles the terminal (or worse, on terminals
that answer queries), and a bidi override reorders what the reader sees.
`text()` escapes all of these, Python-style (``\\n``, ``\\x1b``,
``\\u202e``), so the string stays on its line and shows what it holds.

It also escapes rich markup (``[bold]``, ``[/]``, ``[link=...]``) the way
`rich.markup.escape` does, so that when the CLI draws with `rich` a name
holding markup is shown as written, not interpreted. In plain output such a
bracket shows with its backslash (``\\[bold]``); brackets that are not
markup (``args[0]``, ``[1, 2]``) are left alone.

`--json` keeps the real values: JSON escapes C0 controls itself, and
`json()` writes the other invisible or reordering characters as ``\\uXXXX``
escapes, which decode to the same string.
"""

from __future__ import annotations

import json as _json
import re

__all__ = ["json", "text"]

# C0 and C1 controls and DEL; the bidi marks, embeddings, overrides and
# isolates (Unicode's "Bidi_Control"); line and paragraph separators, which
# some terminals and `str.splitlines` treat as newlines; lone surrogates
# (what Python makes of bytes that are not UTF-8), which no terminal shows.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# The same set but the C0 controls, which json.dumps escapes already.
_UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# rich.markup.escape (rich 13): a "[" that opens a tag gets a backslash, and
# backslashes before it are doubled so that they stay literal.
_MARKUP = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _markup_escaped(match: re.Match[str]) -> str:
    backslashes, tag = match.groups()
    return f"{backslashes}{backslashes}\\{tag}"


def text(value: object) -> str:
    """`str(value)` on one line, with nothing a terminal would act on."""
    shown = _MARKUP.sub(_markup_escaped, _UNSAFE.sub(_escaped, str(value)))
    if shown.endswith("\\") and not shown.endswith("\\\\"):
        shown += "\\"  # as rich does: a trailing backslash must not escape what follows
    return shown


def json(data: object, *, indent: int | None = 2) -> str:
    """`data` as JSON that decodes to the very same values, with no
    character a terminal would act on."""
    dumped = _json.dumps(data, indent=indent, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", dumped)
