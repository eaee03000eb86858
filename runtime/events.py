"""The in-process event stream and the log lines that mirror it.

`subscribe(callback)` receives typed, frozen events as they happen. Every
event is also a line of the "resumable" logger (`resumable._logs`: standard
`logging`, or structlog when the application configured it), with the
execution id and, where there is one, the position (loop/step/item) and
index. Argument and result values are never part of an event or a log line,
and an exception only by its type name. Debug events are built only when
someone would see them: a subscriber, or the "resumable" logger enabled for
DEBUG. The public names are re-exported by `resumable.events`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from resumable._logs import get_logger

log = get_logger()

Level = Literal["debug", "info", "warning"]
_LEVELS: dict[str, int] = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events; `at` is time.time() when it happened."""

    name: ClassVar[str] = "event"
    level: ClassVar[Level] = "info"
    execution_id: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionStarted(Event):
    name: ClassVar[str] = "execution started"
    function: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResumed(Event):
    name: ClassVar[str] = "execution resumed"
    function: str
    attempt: int
    checkpoints: int  # records loaded; loops report where they resume


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionCompleted(Event):
    name: ClassVar[str] = "execution completed"
    function: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionFailed(Event):
    name: ClassVar[str] = "execution failed"
    level: ClassVar[Level] = "warning"
    function: str
    seconds: float
    error: str  # the exception's type name


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionStopped(Event):
    """The execution stopped at a cancel request; its checkpoints are kept
    and `resume` continues it. Logged as "execution cancelled"; named apart
    from the error `resumable.errors.ExecutionCancelled`, which the caller
    awaiting the execution gets."""

    name: ClassVar[str] = "execution cancelled"
    function: str
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopResumed(Event):
    name: ClassVar[str] = "loop resumed"
    position: str
    loop: str
    index: int  # the first unfinished iteration


@dataclass(frozen=True, slots=True, kw_only=True)
class FanoutResumed(Event):
    """An amap/agather whose recorded items will be delivered without running."""

    name: ClassVar[str] = "fan-out resumed"
    position: str
    kind: str  # "map" or "gather"
    site: str
    recorded: int  # items already finished: they will not run again


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointWritten(Event):
    name: ClassVar[str] = "checkpoint written"
    level: ClassVar[Level] = "debug"
    position: str
    kind: str  # loop, step, map, gather, value, sleep
    index: int | None = None
    records: int = 1
    seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IterationStarted(Event):
    """A checkpointed loop's body starts iteration `index` (replayed
    iterations are skipped, so they never start)."""

    name: ClassVar[str] = "iteration started"
    level: ClassVar[Level] = "debug"
    position: str
    loop: str
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemStarted(Event):
    """An amap/agather item starts running (recorded items never start)."""

    name: ClassVar[str] = "item started"
    level: ClassVar[Level] = "debug"
    position: str
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StepStarted(Event):
    """A step's function is about to be called (not when it is replayed)."""

    name: ClassVar[str] = "step started"
    level: ClassVar[Level] = "debug"
    position: str
    step: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecorded(Event):
    name: ClassVar[str] = "step recorded"
    level: ClassVar[Level] = "debug"
    position: str
    step: str
    seconds: float
    failed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StepReplayed(Event):
    name: ClassVar[str] = "step replayed"
    level: ClassVar[Level] = "debug"
    position: str
    step: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRetried(Event):
    """An amap/agather item failed and will be tried again; `error` is the
    exception's type name (its message may hold secrets)."""

    name: ClassVar[str] = "item retried"
    position: str
    index: int | None
    attempt: int
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRetried(Event):
    """A step failed and will be called again; `error` is the exception's
    type name."""

    name: ClassVar[str] = "step retried"
    position: str | None  # None outside an execution
    step: str
    attempt: int
    error: str


@dataclass(slots=True)
class _Hub:
    subscribers: list[Callable[[Event], None]] = field(default_factory=list)


_hub = _Hub()


def wanted(level: str = "debug") -> bool:
    """Whether an event of `level` would reach anyone; hot paths check this
    before building the event."""
    return level != "debug" or bool(_hub.subscribers) or log.wants(logging.DEBUG)


def subscribe(callback: Callable[[Event], None]) -> Callable[[], None]:
    """Call `callback(event)` for every event in this process; returns a
    function that unsubscribes. Callbacks run inline, so keep them quick; an
    exception in one is logged and does not disturb the execution."""
    if not callable(callback):
        raise TypeError(f"subscribe({callback!r}): expected a callable")
    _hub.subscribers.append(callback)

    def unsubscribe() -> None:
        if callback in _hub.subscribers:
            _hub.subscribers.remove(callback)

    return unsubscribe


E = TypeVar("E", bound=Event)


def record(event_type: type[E], execution_id: str, /, **fields: Any) -> None:
    """Build and emit an event of `kind` stamped now, unless nobody would
    see it (debug events with no subscriber and debug logs off): hot paths
    call this every iteration."""
    if event_type.level == "debug" and not wanted():
        return
    emit(event_type(execution_id=execution_id, at=time.time(), **fields))


def emit(event: Event) -> None:
    level = _LEVELS[event.level]
    if log.wants(level):
        fields: dict[str, Any] = asdict(event)
        fields.pop("at")
        log.log(level, event.name, fields)
    for callback in tuple(_hub.subscribers):
        try:
            callback(event)
        except Exception as exc:
            # The type only: an exception's message may hold the event's
            # values' secrets, or anything else.
            log.warning(
                "event subscriber failed", subscriber=repr(callback), error=type(exc).__name__
            )
