"""The statuses an execution record can have. A leaf: the command line's
`--status` choices read it without loading the stores."""

from __future__ import annotations

from typing import Literal

__all__ = ["FINISHED", "STATUSES", "Status"]

# "queued" (recorded for a worker to take) and "waiting" (suspended in a
# durable wait, its lease released) are written by the queue and the durable
# waits of a later release. This one stores, lists and shows them, and
# neither recovers nor collects them (`resume(id)` runs one, as it would an
# interrupted run): a store a newer process wrote stays intact here.
Status = Literal["queued", "running", "waiting", "completed", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("queued", "running", "waiting", "completed", "failed", "cancelled")
# Final: what `gc` may delete once old enough.
FINISHED: tuple[Status, ...] = ("completed", "failed", "cancelled")
