"""How the command line logs: it is the application, so it configures
logging, on stderr (stdout stays clean for tables and --json). Imported only
by commands that run the library: `--help` needs no `logging`."""

from __future__ import annotations

import logging
import os
import sys
import time

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class _ToStderr(logging.Handler):
    """Each record as one line on the stderr of the moment (a command run
    in-process may have swapped it), flushed at once, in the look the CLI
    always had: "2026-01-31 12:00:00 [warning  ] event key=value"."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
            sys.stderr.write(f"{when} [{record.levelname.lower():<9}] {record.getMessage()}\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def configure_logging() -> None:
    """The CLI is the application here, so it configures logging, on
    stderr: stdout stays clean for tables and --json. The library's records
    at RESUMABLE_LOG_LEVEL (info unless set), others (the user's code that
    `resume` runs) at warning. A root logger that already has a handler is
    left as it is (basicConfig adds none then)."""
    logging.basicConfig(level=logging.WARNING, handlers=[_ToStderr()])
    level = _LEVELS.get(os.environ.get("RESUMABLE_LOG_LEVEL", "").lower(), logging.INFO)
    logging.getLogger("resumable").setLevel(level)
