"""The side-effect log every corpus program writes: one line per loop-body run.

Opened, written and closed per line, like `tests/jobs/pipeline.py`: nothing
sits in a buffer, so a SIGKILL loses no line that was written. The harness
also points RESUMABLE_FAULT_COUNT_WRITES at the same file, so the log shows
which iterations ran before which checkpoint write.
"""

from __future__ import annotations


def record(log: str, tag: str) -> None:
    """One line: `tag` names the iteration (`fetch:3`, `cell:2:1`)."""
    with open(log, "a", encoding="utf-8") as out:
        out.write(tag + "\n")
