"""Start-up of the command line: `resumable --help` and `resumable list`.

Each is a whole process, timed from outside (start to exit), beside a bare
`python -c pass` in the same interpreter, interleaved so the machine's
drift hits all alike. What the command adds over the interpreter's own
start-up is what `import resumable` and the CLI import before they can
answer; `--help` needs no store, no engine, no rich.

Target: `resumable --help` in at most 0.1 s wall (median).

`python -m benchmarks.bench_cli [--quick]`
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments, interleaved

HELP_TARGET = 0.1  # seconds


def _timed(command: list[str], cwd: str) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    args = arguments(__doc__ or "")
    runs = 5 if args.quick else 21
    python = sys.executable
    report = Report("Start-up of the `resumable` command (whole processes)", args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'state.db'}"
        # One execution-less store, made once: `list` reads it each time.
        subprocess.run(
            [python, "-c", f"from resumable.stores import open_store; open_store({store!r})"],
            check=True,
        )
        cases = {
            "python -c pass (s)": lambda: _timed([python, "-c", "pass"], tmp),
            "resumable --help (s)": lambda: _timed([python, "-m", "resumable", "--help"], tmp),
            "resumable list, empty SQLite store (s)": lambda: _timed(
                [python, "-m", "resumable", "--store", store, "list"], tmp
            ),
        }
        walls = {
            name: report.add(Sample(name, values))
            for name, values in interleaved(runs, cases).items()
        }
    bare, helped, listed = walls.values()
    report.target("resumable --help, wall (s)", helped.median, HELP_TARGET, unit=" s")
    report.notes.append(
        f"--help adds {(helped.median - bare.median) * 1000:.0f} ms to the interpreter's "
        f"start-up, list {(listed.median - bare.median) * 1000:.0f} ms"
    )
    report.notes.append(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    report.show("s", digits=3)
    report.save("cli")


if __name__ == "__main__":
    main()
