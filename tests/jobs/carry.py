"""Resumable functions exercising each kind of carried local.

Every loop body records a side effect in EFFECTS, keyed by what it
processed, so tests can count how often each iteration really ran.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from resumable import aiter_checkpointed, resumable

EFFECTS: Counter[str] = Counter()


def effect(tag: str) -> None:
    EFFECTS[tag] += 1


async def agen(n: int):  # an async iterable source
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@resumable
async def numbers(n: int) -> tuple[int, float, str]:
    total = 0
    scaled = 0.5
    text = ""
    async for i in aiter_checkpointed(range(n)):
        effect(f"numbers:{i}")
        total += i
        scaled *= 1.5
        text += str(i % 10)
    return total, scaled, text


@resumable
async def containers(n: int) -> tuple[list[int], list[int], dict[int, int], set[int], list[int]]:
    appended = [-1]
    extended: list[int] = []
    squares: dict[int, int] = {}
    odd: set[int] = set()
    edited = [0, 0]
    async for i in aiter_checkpointed(agen(n)):
        effect(f"containers:{i}")
        appended.append(i)
        extended.extend([i, i])
        squares[i] = i * i
        if i % 2:
            odd.add(i)
        edited[i % 2] += i  # item assignment: carried whole, not as a delta
    return appended, extended, squares, odd, edited


@resumable
async def rebinding(n: int) -> tuple[tuple[int, ...], int | None, list[int]]:
    history: tuple[int, ...] = ()
    best = None
    window: list[int] = []
    async for i in aiter_checkpointed(range(n)):
        effect(f"rebinding:{i}")
        history = (*history, i)  # a new object each time
        best = i if best is None else max(best, (i * 7) % 11)
        window = [*window[-2:], i]
    return history, best, window


@resumable
async def closure_cell(n: int) -> tuple[int, list[int]]:
    count = 0
    seen: list[int] = []

    def bump(value: int) -> None:
        nonlocal count
        count += value
        seen.append(value)

    async for i in aiter_checkpointed(range(n)):
        effect(f"closure:{i}")
        bump(i)
    return count, seen


@resumable
async def nested(n: int) -> list[tuple[int, int]]:
    rows = []
    async for i in aiter_checkpointed(range(n)):
        row_total = 0
        async for j in aiter_checkpointed(range(i + 1)):
            effect(f"nested:{i}:{j}")
            row_total += j
        rows.append((i, row_total))
    return rows


async def _helper_loop(items: list[int], factor: int) -> int:
    acc = 0
    async for x in aiter_checkpointed(items):
        effect(f"helper:{factor}:{x}")
        acc += x * factor
    return acc


@resumable
async def loop_in_helper(n: int) -> tuple[int, int]:
    first = await _helper_loop(list(range(n)), 1)
    second = await _helper_loop(list(range(n)), 10)
    return first, second


@resumable
async def control_flow(n: int) -> tuple[int, int, list[int], int]:
    total = 0
    errors = 0
    kept: list[int] = []
    last = -1
    async for i in aiter_checkpointed(range(n * 2)):
        effect(f"flow:{i}")
        if i % 5 == 0:
            continue
        try:
            if i % 7 == 0:
                raise ValueError(i)
            total += i
        except ValueError:
            errors += 1
            continue
        kept.append(i)
        last = i
        if i >= n + n // 2:
            break
    return total, errors, kept, last


@resumable
async def explicit_carry(n: int) -> tuple[int, int]:
    carried = 0
    not_carried = 0
    async for i in aiter_checkpointed(range(n), carry=("carried",), ignore=("not_carried",)):
        effect(f"explicit:{i}")
        carried += i
        not_carried += 1
    return carried, not_carried


@resumable
async def carry_nothing(n: int) -> int:
    async for i in aiter_checkpointed(range(n), carry=()):
        effect(f"nothing:{i}")
    return n


@resumable
async def batched(n: int) -> int:
    total = 0
    async for i in aiter_checkpointed(range(n), every=3):
        effect(f"batched:{i}")
        total += i
    return total


@resumable
async def two_loops(n: int) -> tuple[list[str], int]:
    words = []
    async for i in aiter_checkpointed(range(n)):
        effect(f"two-a:{i}")
        words.append(f"w{i}")
    length = 0
    async for w in aiter_checkpointed(words):
        effect(f"two-b:{w}")
        length += len(w)
    return words, length


JOBS = [
    numbers,
    containers,
    rebinding,
    closure_cell,
    nested,
    loop_in_helper,
    control_flow,
    explicit_carry,
    carry_nothing,
    batched,
    two_loops,
]
