"""Who owns an execution: "host:pid:start", and whether that owner still lives.

The start time (clock ticks since boot, from /proc) tells a live process
from a new one that reused the pid. On the owner's own host a dead owner is
recognised at once, so a crashed run resumes without waiting for its lease
to expire; from other hosts only lease expiry tells.
"""

from __future__ import annotations

import functools
import os
import socket


@functools.cache
def _start_ticks(pid: int) -> str:
    return _read_start_ticks(pid)


def _read_start_ticks(pid: int) -> str:
    return _proc_stat(pid)[1]


def _proc_stat(pid: int) -> tuple[str, str]:
    """(state, start time in clock ticks) from /proc/PID/stat, or ("?", "0")."""
    try:
        # Bytes, decoded here: a text-mode open would import the ascii codec
        # module on first use (~0.3 ms, on the way to every first resume).
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name (field 2) may contain spaces; fields after it don't.
            fields = stat.read().rsplit(b")", 1)[1].split()
            return fields[0].decode("ascii"), fields[19].decode("ascii")
    except (OSError, IndexError, UnicodeDecodeError):
        return "?", "0"


def this_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def is_dead_local(owner: str | None) -> bool:
    """True only when the owner is a process of this host that no longer runs."""
    if not owner:
        return False
    host, pid_text, ticks = [*owner.split(":"), "", ""][:3]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return ticks != _start_ticks(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    state, current = _proc_stat(pid)
    if state in ("Z", "X"):
        # Killed but not yet reaped by its parent: os.kill() still finds a
        # zombie, yet it will never write again.
        return True
    return current not in ("0", ticks) and ticks != "0"
