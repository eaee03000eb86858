"""Many `resumable` commands in one process: `python -m support.cli_batch` reads a
JSON list of commands on stdin ({"argv": [...], "marker": path or null}) and
prints, as JSON, each command's exit code, stdout and stderr, and whether
its marker file existed after it ran (then it is removed, so the next
command's check is its own).

Each command runs as the console script would (`resumable._cli.main`), with
stdout and stderr captured, the library's log lines included; an exception
that escapes `main` is printed as a traceback into its stderr, as the
interpreter would have. One interpreter start-up for a batch of commands
keeps a test that runs every reader on many tampered stores fast.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from typing import Any


def run(argv: list[str], marker: str | None) -> dict[str, Any]:
    from resumable import _config
    from resumable._cli import main

    _config.reset()  # a fresh process-wide store cache, as in a process of its own
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # what the interpreter would print and exit 1 with
            traceback.print_exc()
            code = 1
    ran = marker is not None and os.path.exists(marker)
    if ran:
        os.unlink(marker)
    return {
        "argv": argv,
        "code": code,
        "stdout": out.getvalue(),
        "stderr": err.getvalue(),
        "marker": ran,
    }


def main() -> None:
    # Each command configures logging as the CLI does (resumable/_cli/logsetup.py),
    # whose handler writes to the stderr of the command running at the time.
    commands = json.load(sys.stdin)
    results = [run(command["argv"], command.get("marker")) for command in commands]
    sys.__stdout__.write(json.dumps(results))


if __name__ == "__main__":
    main()
