"""Jobs that subprocess crash tests run, kill with SIGKILL, and resume.

Side effects go to a log file (one line per loop-body run, flushed), so the
test can count how often each iteration really ran across processes.
"""

from __future__ import annotations

import asyncio

from resumable import aiter_checkpointed, resumable


def record(log_path: str, tag: str) -> None:
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(tag + "\n")


@resumable
async def flat(n: int, log_path: str, delay: float) -> dict[str, object]:
    total = 0
    names = []
    async for i in aiter_checkpointed(range(n)):
        await asyncio.sleep(delay)
        record(log_path, f"flat:{i}")
        total += i * i
        names.append(f"item-{i}")
    return {"total": total, "names": names}


async def _score(rows: list[int], log_path: str, delay: float, label: str) -> int:
    best = 0
    async for value in aiter_checkpointed(rows):
        await asyncio.sleep(delay)
        record(log_path, f"{label}:{value}")
        best = max(best, value * 3 % 17)
    return best


@resumable
async def nested(n: int, log_path: str, delay: float) -> dict[str, object]:
    per_row = {}
    async for i in aiter_checkpointed(range(n)):
        inner_total = 0
        async for j in aiter_checkpointed(range(4)):
            await asyncio.sleep(delay)
            record(log_path, f"nested:{i}:{j}")
            inner_total += i * j
        per_row[i] = inner_total
    best = await _score(list(range(n)), log_path, delay, "score")
    return {"rows": per_row, "best": best}


def expected(job: str, n: int) -> object:
    """What an uninterrupted run returns (JSON-shaped, as the child prints it)."""
    if job == "flat":
        return {"total": sum(i * i for i in range(n)), "names": [f"item-{i}" for i in range(n)]}
    rows = {str(i): sum(i * j for j in range(4)) for i in range(n)}
    return {"rows": rows, "best": max(v * 3 % 17 for v in range(n))}


def tags(job: str, n: int) -> list[str]:
    if job == "flat":
        return [f"flat:{i}" for i in range(n)]
    return [f"nested:{i}:{j}" for i in range(n) for j in range(4)] + [
        f"score:{v}" for v in range(n)
    ]
