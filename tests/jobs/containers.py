"""Loops whose carried containers are written as deltas (runtime/deltas.py):
every way the body changes them at the top level, and the changes a delta
cannot express, which must be written whole."""

from __future__ import annotations

from collections import deque

from resumable import aiter_checkpointed, resumable


@resumable
async def dict_ops(n: int) -> dict[str, object]:
    table: dict[object, object] = {"keep": 0, "drop": 1, "move": 2}
    async for i in aiter_checkpointed(range(n)):
        table[f"k{i}"] = i * i  # new keys
        table["keep"] = i  # an existing key, new value
        if i % 4 == 1:
            del table[f"k{i - 1}"]  # a key goes
        if i % 5 == 2:
            table.pop("drop", None)
        if i % 6 == 3:
            value = table.pop("move", 0)
            table["move"] = value  # deleted and added back: moves to the end
        if i % 7 == 4:
            table.setdefault(f"s{i}", [i])
        if i % 9 == 5:
            table.update({"u": i, f"k{i}": -i})
    return {"items": list(table.items())}  # the order is part of the result


@resumable
async def set_ops(n: int) -> list[int]:
    seen: set[int] = {100, 101}
    async for i in aiter_checkpointed(range(n)):
        seen.add(i % 13)
        if i % 3 == 0:
            seen.discard((i + 5) % 13)
        if i == 4:
            seen.clear()
        if i % 8 == 6:
            seen.update({200 + i})
    return sorted(seen)


@resumable
async def deque_ops(n: int) -> list[int]:
    recent: deque[int] = deque()
    bounded: deque[int] = deque(maxlen=3)  # drops items: written whole
    async for i in aiter_checkpointed(range(n)):
        recent.append(i)
        bounded.append(i)
        if i % 4 == 3:
            recent.extend([-i, -i])
    return [*recent, *bounded]


@resumable
async def list_edits(n: int) -> list[object]:
    out: list[object] = []
    async for i in aiter_checkpointed(range(n)):
        out.append(i)
        if i % 5 == 4:
            out[0] = f"edited {i}"  # an item the records hold changes: written whole
        if i % 7 == 6:
            out.pop()
    return out


@resumable
async def long_dict(n: int) -> int:
    table = {}
    async for i in aiter_checkpointed(range(n)):
        table[i % 50] = i  # overwrites once the 50 keys exist
        table[f"n{i}"] = i
    return sum(v for v in table.values())


def plain(job, n: int):
    return job.__wrapped__(n)
