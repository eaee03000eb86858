"""Jobs for the lease tests: processes that own, race for and lose executions.

`python -m jobs.child STORE ID leases.tally N LOG DELAY` runs `tally` (every
iteration appends `tally:I` to LOG). `python -m jobs.leases STORE ID AT`
waits until the wall-clock time AT, so that several racers start together,
then resumes the execution and prints one JSON line: {"result": ...}, or
{"locked": owner, "message": ...} when another process owns it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import resumable
from resumable import ExecutionLocked, aiter_checkpointed


def record(log_path: str, tag: str) -> None:
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(tag + "\n")


@resumable.resumable
async def tally(n: int, log_path: str, delay: float) -> dict[str, object]:
    total = 0
    seen = []
    async for i in aiter_checkpointed(range(n)):
        await asyncio.sleep(delay)
        record(log_path, f"tally:{i}")
        total += i * 7 % 11
        seen.append(i)
    return {"total": total, "seen": seen}


def expected(n: int) -> dict[str, object]:
    """What an uninterrupted run returns (as JSON)."""
    return {"total": sum(i * 7 % 11 for i in range(n)), "seen": list(range(n))}


def tags(n: int) -> list[str]:
    return [f"tally:{i}" for i in range(n)]


async def _race(store: str, execution_id: str, at: float) -> dict[str, object]:
    await asyncio.sleep(max(0.0, at - time.time()))
    try:
        return {"result": await resumable.resume(execution_id, store=store)}
    except ExecutionLocked as exc:
        return {"locked": exc.owner, "message": str(exc)}


def main() -> None:
    store, execution_id, at = sys.argv[1:]
    print(json.dumps(asyncio.run(_race(store, execution_id, float(at)))))


if __name__ == "__main__":
    main()
