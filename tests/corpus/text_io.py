"""Text written as the loop goes: csv and JSON lines into `io.StringIO`, and
real files opened before the loop.

An in-memory buffer is data: its text is the state. A file on disk is not:
the code before the loop runs again on resume, and what it does to the file
(`"w"` truncates it, `"a"` keeps the lines of the in-flight iteration and
loses whatever was still buffered when SIGKILL came) decides the result.
"""

from __future__ import annotations

import csv
import io
import json

from corpus import exact, refused
from corpus._log import record
from resumable import aiter_checkpointed, resumable


def shipment(i: int) -> dict[str, object]:
    return {"id": i, "sku": f"SKU-{i * 37 % 1000:04d}", "qty": i * 3 % 7 + 1, "dock": "ABC"[i % 3]}


@exact(
    redis=True,
    why="The state is the StringIO's text; the csv.writer (unpicklable) only "
    "writes into it. A resume must give the writer that the replayed code makes "
    "a buffer holding the text so far: e.g. carry the buffer's text and restore "
    "it into the StringIO the replay created, which the writer points at. Losing "
    "the rows, or refusing a csv export to a buffer, is not acceptable.",
)
@resumable
async def csv_export(log: str) -> str:
    """`csv.writer(io.StringIO())` made before the loop; a row per item."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "sku", "qty", "dock"])
    async for i in aiter_checkpointed(range(10)):
        row = shipment(i)
        record(log, f"csv:{i}")
        writer.writerow([row["id"], row["sku"], row["qty"], row["dock"]])
    return buffer.getvalue()


@exact()
@resumable
async def jsonl_buffer(log: str) -> list[str]:
    """`out.write(json.dumps(record) + "\\n")` into a StringIO."""
    out = io.StringIO()
    async for i in aiter_checkpointed(range(9)):
        row = shipment(i)
        record(log, f"jsonl:{i}")
        if row["qty"] > 2:
            out.write(json.dumps(row, sort_keys=True) + "\n")
    return out.getvalue().splitlines()


@refused(
    "CheckpointError",
    variable="out",
    why="A file opened with 'w' before the loop is truncated by the replayed "
    "code on resume: every line of the checkpointed iterations is gone. The file "
    "cannot be carried and is not safe to leave out.",
)
@resumable
async def write_mode_file(log: str) -> list[str]:
    """`out = open(path, "w")` before the loop, `out.write(...)` in the body."""
    path = log + ".w.txt"
    out = open(path, "w", encoding="utf-8")  # noqa: SIM115 - the shape under test
    async for i in aiter_checkpointed(range(8)):
        row = shipment(i)
        record(log, f"wfile:{i}")
        out.write(f"{row['id']},{row['sku']}\n")
    out.close()
    with open(path, encoding="utf-8") as written:
        return written.read().splitlines()


@refused(
    "CheckpointError",
    variable="out",
    why="Debatable, so: an 'a'-mode file survives the replay, but SIGKILL loses "
    "what its buffer held, and the in-flight iteration's line is written twice "
    "on resume; the file's content (the result here) differs from an "
    "uninterrupted run. The library cannot know that the user accepts "
    "at-least-once lines, so AUTO must refuse, naming the file variable; "
    "`ignore=('out',)` says it is accepted (see append_mode_file_ignored).",
)
@resumable
async def append_mode_file(log: str) -> list[str]:
    """`out = open(path, "a")` before the loop, `out.write(...)` in the body."""
    path = log + ".a.txt"
    out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - the shape under test
    async for i in aiter_checkpointed(range(8)):
        row = shipment(i)
        record(log, f"afile:{i}")
        out.write(f"{row['id']},{row['sku']}\n")
    out.close()
    with open(path, encoding="utf-8") as written:
        return written.read().splitlines()


@exact(
    why="`ignore=('out',)` declares the file deliberately not carried: the user "
    "accepts at-least-once lines in it (flushed per line) and the result does not "
    "read it back; everything else is carried as usual."
)
@resumable
async def append_mode_file_ignored(log: str) -> dict[str, object]:
    """The same file, declared with `ignore=`; the result is the counts."""
    out = open(log + ".ignored.txt", "a", encoding="utf-8")  # noqa: SIM115
    lines = 0
    per_dock: dict[str, int] = {}
    async for i in aiter_checkpointed(range(8), ignore=("out",)):
        row = shipment(i)
        record(log, f"ignored:{i}")
        out.write(f"{row['id']},{row['sku']}\n")
        out.flush()
        lines += 1
        per_dock[str(row["dock"])] = per_dock.get(str(row["dock"]), 0) + int(row["qty"])
    out.close()
    return {"lines": lines, "per_dock": per_dock}
