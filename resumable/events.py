"""The in-process event stream: typed, frozen events of every execution in
this process, as they happen.

    import resumable.events

    def show(event: resumable.events.Event) -> None:
        if isinstance(event, resumable.events.LoopResumed):
            print(f"{event.execution_id}: {event.loop} resumes at {event.index}")

    unsubscribe = resumable.events.subscribe(show)

Each event has `execution_id`, `at` (time.time() when it happened) and the
fields of its class; `name` is the line it is logged as. Values of the
user's (arguments, results, carried variables, exception messages) are
never part of an event. Callbacks run inline, so keep them quick; one that
raises is logged (by the exception's type) and ignored.
"""

from __future__ import annotations

from resumable.runtime.events import (
    CheckpointWritten,
    Event,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionStopped,
    FanoutResumed,
    ItemRetried,
    ItemStarted,
    IterationStarted,
    LoopResumed,
    StepRecorded,
    StepReplayed,
    StepRetried,
    StepStarted,
    subscribe,
)

__all__ = [
    "CheckpointWritten",
    "Event",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionResumed",
    "ExecutionStarted",
    "ExecutionStopped",
    "FanoutResumed",
    "ItemRetried",
    "ItemStarted",
    "IterationStarted",
    "LoopResumed",
    "StepRecorded",
    "StepReplayed",
    "StepRetried",
    "StepStarted",
    "subscribe",
]
