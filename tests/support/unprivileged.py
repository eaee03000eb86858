"""Run a command as root without root's power over file permissions.

`python unprivileged.py PROGRAM ARGS...` drops CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH and CAP_FOWNER from the capability bounding set, then
execs PROGRAM: still uid 0 (so it can read what root owns with mode 0700,
such as pytest's temporary directories and the virtualenv), but a directory
of mode 000 or a file of mode 0444 now stops it as it stops any user. That
makes the permission tests meaningful when the suite runs as root (CI
containers). Linux only; exits with CANNOT when the kernel refuses, and the
tests then skip, saying why.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

CANNOT = 99
_PR_CAPBSET_DROP = 24
_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def command(*args: str) -> list[str]:
    """`args` as a command that obeys file permissions even as root."""
    if os.geteuid() != 0:
        return list(args)
    return [sys.executable, str(Path(__file__)), *args]


def main() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            print(f"prctl(PR_CAPBSET_DROP, {cap}): errno {ctypes.get_errno()}", file=sys.stderr)
            sys.exit(CANNOT)
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
