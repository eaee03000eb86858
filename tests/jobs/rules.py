"""Loops for the carry rules that tests/test_carry_rules.py checks one by one
(the realistic programs are in tests/corpus)."""

from __future__ import annotations

import asyncio
import hashlib
import threading

from resumable import agather, aiter_checkpointed, resumable

ORDER: list[str] = ["a", "b", "c", "d", "e", "f"]
SEEN: list[str] = []
PROCESSED = 0


def ran(tag: str) -> None:
    SEEN.append(tag)  # instrumentation: a side effect outside the loop's state


def score(vocabulary: list[int], item: int) -> int:
    """Only reads its argument: the list passed to it is never carried."""
    return sum(1 for word in vocabulary[:8] if word <= item) + len(vocabulary)


@resumable(keep_checkpoints=True)  # the test reads its records
async def read_only_input(n: int) -> int:
    vocabulary = list(range(10_000))
    total = 0
    async for i in aiter_checkpointed(range(n)):
        total += score(vocabulary, i)
    return total


def pick(table: list, i: int):
    """Gives back one element of its argument."""
    return table[i % len(table)]


@resumable(keep_checkpoints=True)  # the test reads its records
async def element_of_input(n: int) -> int:
    vocabulary = list(range(10_000))
    total = 0
    async for i in aiter_checkpointed(range(n)):
        total += pick(vocabulary, i)  # an int element: += makes a new int
    return total


@resumable
async def element_grown_in_place(n: int) -> list[list[int]]:
    rows: list[list[int]] = [[], [], []]
    async for i in aiter_checkpointed(range(n)):
        row = pick(rows, i)
        row += [i]  # a list element: += changes rows' inner list
    return rows


@resumable
async def ordered(items: list[str]) -> list[str]:
    out = []
    async for item in aiter_checkpointed(ORDER):
        ran(item)
        out.append(item.upper())
    return out


@resumable
async def over_a_set() -> int:
    count = 0
    async for _ in aiter_checkpointed({"x", "y", "z"}):
        count += 1
    return count


async def _f(d: int) -> int:
    await asyncio.sleep(0)
    return d * 2


@resumable
async def comprehension(docs: list[int]) -> list[int]:
    return [await _f(d) async for d in aiter_checkpointed(docs)]


async def _half(items: range) -> int:
    total = 0
    async for i in aiter_checkpointed(items):
        await asyncio.sleep(0.001)
        total += i
    return total


@resumable
async def plain_gather() -> list[int]:
    return list(await asyncio.gather(_half(range(5)), _half(range(5, 10))))


@resumable
async def checkpointed_gather() -> list[int]:
    return await agather(_half(range(5)), _half(range(5, 10)))


@resumable
async def rebinds_a_global(n: int) -> int:
    global PROCESSED  # noqa: PLW0603 - the shape under test
    async for _ in aiter_checkpointed(range(n)):
        PROCESSED += 1
    return PROCESSED


@resumable
async def digest_of(n: int) -> str:
    digest = hashlib.sha256()
    async for i in aiter_checkpointed(range(n)):
        digest.update(str(i).encode())
    return digest.hexdigest()


class Client:
    """A service handle: holds a lock, cannot be pickled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def get(self, i: int) -> int:
        with self._lock:
            return i * 3


@resumable
async def lazy_client_and_temporary(n: int) -> list[int]:
    client = None
    out = []
    async for i in aiter_checkpointed(range(n)):
        if client is None:
            client = Client()
        lock = threading.Lock()  # a temporary captured by the lambda below
        hits = [client.get(i), i]
        out.append(max(hits, key=lambda h: (h, id(lock)) and h))
    return out


@resumable
async def explicit_but_incomplete(n: int) -> tuple[int, int]:
    kept, forgotten = 0, 0
    async for i in aiter_checkpointed(range(n), carry=("kept",)):
        kept += i
        forgotten += 1
    return kept, forgotten


@resumable
async def inner_lists(n: int) -> list[list[int]]:
    batches: list[list[int]] = [[]]
    async for i in aiter_checkpointed(range(n)):
        if len(batches[-1]) == 3:
            batches.append([])
        batches[-1].append(i)
    return batches
