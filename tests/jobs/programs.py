"""A loop whose behaviour is driven by data, for property tests: each op
touches a different kind of carried local, or steers the loop."""

from __future__ import annotations

from resumable import aiter_checkpointed, resumable

RUNS: list[int] = []


def ran(index: int) -> None:
    """A side effect outside the loop's state: counts how often each
    iteration really ran (module state changed by a called function is not
    carried)."""
    RUNS.append(index)


@resumable
async def program(ops: list[tuple[str, int]], every: int) -> dict[str, object]:
    total = 0
    text = ""
    items: list[int] = []
    table: dict[int, int] = {}
    seen: set[int] = set()
    last = None
    async for index, (op, value) in aiter_checkpointed(enumerate(ops), every=every):
        ran(index)
        if op == "skip":
            continue
        if op == "stop" and value > 80:
            break
        if op == "add":
            total += value
        elif op == "append":
            items.append(value)
        elif op == "put":
            table[value % 7] = table.get(value % 7, 0) + value
        elif op == "text":
            text += chr(97 + value % 26)
        elif op == "seen":
            seen.add(value % 11)
        elif op == "swap":
            items = [*reversed(items), value]  # rebinding the appended list
        last = (op, value)
    return {
        "total": total,
        "text": text,
        "items": items,
        "table": table,
        "seen": sorted(seen),
        "last": last,
    }
