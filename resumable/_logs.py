"""The library's log lines: the standard `logging` logger, or structlog when
the application configured it.

Calls look like structlog's (`log.info("execution started", execution_id=...)`)
so that one call serves both routes:

- If the application configured structlog (`structlog.is_configured()`),
  the event and its keys go through its processors, as they always did.
- Otherwise they become a record of the standard `logging` logger
  "resumable": the message is the event followed by `key=value` pairs, and
  each key is also an attribute of the record (`extra=`), with `event`, for
  formatters that emit JSON. Until the application configures logging only
  WARNING and above are seen, on stderr, through logging's last-resort
  handler; nothing is ever written to stdout.

The library adds no handler and never sets `propagate`: a NullHandler here
would silence the last-resort handler, and with it our warnings.

structlog is optional: it is looked up in `sys.modules`, because an
application that configured it has imported it; importing it ourselves would
only cost start-up time.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["Logger", "get_logger"]

NAME = "resumable"

# LogRecord's own attributes: `extra=` may not overwrite them (logging raises
# KeyError), so a key of ours with such a name is passed as "resumable_<key>".
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _structlog() -> Any:
    """The configured structlog module, or None to log through `logging`."""
    structlog = sys.modules.get("structlog")
    if structlog is not None and structlog.is_configured():
        return structlog
    return None


def _text(value: object) -> str:
    text = str(value) if isinstance(value, str) else repr(value)
    return repr(text) if not text or any(c.isspace() or c in "\"'=" for c in text) else text


def render(event: str, fields: dict[str, Any]) -> str:
    """The message of a `logging` record: "event key=value key=value"."""
    return " ".join([event, *(f"{key}={_text(value)}" for key, value in fields.items())])


class Logger:
    """A structlog-shaped logger over `logging.getLogger(name)`."""

    __slots__ = ("_bound", "stdlib")

    def __init__(self, name: str = NAME) -> None:
        self.stdlib = logging.getLogger(name)
        self._bound: Any = None  # structlog's lazy proxy, made on first use

    def wants(self, level: int) -> bool:
        """Whether a line at `level` would be kept. The `logging` logger's
        level decides, on both routes, with one exception: when structlog
        is configured and nobody set a level on the "resumable" logger,
        INFO and above go to structlog, whose configuration filters them.
        So debug lines (the per-checkpoint ones) take one switch on either
        route, `logging.getLogger("resumable").setLevel(logging.DEBUG)`.
        Cheap for debug: logging caches isEnabledFor."""
        if level > logging.DEBUG and not self.stdlib.level and _structlog() is not None:
            return True
        return self.stdlib.isEnabledFor(level)

    def debug(self, event: str, **fields: Any) -> None:
        self.log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log(logging.WARNING, event, fields)

    def log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if not self.wants(level):
            return
        structlog = _structlog()
        if structlog is not None:
            if self._bound is None:
                self._bound = structlog.get_logger(self.stdlib.name)
            getattr(self._bound, logging.getLevelName(level).lower())(event, **fields)
            return
        extra = {
            f"resumable_{key}" if key in _RECORD_ATTRIBUTES else key: value
            for key, value in fields.items()
        }
        extra["event"] = event
        # stacklevel 3: the record names the library line that logged, not
        # this module (log <- debug/info/warning <- caller).
        self.stdlib.log(level, render(event, fields), extra=extra, stacklevel=3)


def get_logger(name: str = NAME) -> Logger:
    return Logger(name)
