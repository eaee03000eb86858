"""Shapes the helper cannot serve: it must say so in the first run, before
any checkpoint is written, instead of checkpointing something it cannot
resume correctly.

* an async comprehension over `aiter_checkpointed(...)`: the loop's body is
  a comprehension, there is no frame state to restore it into;
* two checkpointed loops run concurrently by a plain `asyncio.gather`: the
  positions that key their checkpoints would depend on timing (agather and
  amap give each awaitable its own scope; gather does not);
* a `set` of str as the iterable: its order depends on the process's hash
  seed, so a resumed process would skip the wrong items.
"""

from __future__ import annotations

import asyncio

from corpus import refused
from corpus._log import record
from resumable import aiter_checkpointed, resumable

DOCS = [f"doc {i}: " + "lorem ipsum " * (i % 4 + 1) for i in range(8)]


async def summarize(log: str, doc: str) -> str:
    await asyncio.sleep(0)
    record(log, f"summarize:{doc.split(':', maxsplit=1)[0]}")
    return doc.split(":", maxsplit=1)[0].upper() + f" ({len(doc.split())} words)"


@refused(
    "LoopShapeError",
    mentions=("shapes.py",),
    why="The body is a comprehension: no frame of the @resumable function holds "
    "its partial list, so nothing can be restored into it.",
)
@resumable
async def async_comprehension(log: str) -> list[str]:
    """`[await f(d) async for d in aiter_checkpointed(docs)]`."""
    return [await summarize(log, d) async for d in aiter_checkpointed(DOCS)]


async def tally(log: str, name: str, n: int) -> int:
    total = 0
    async for i in aiter_checkpointed(range(n)):
        await asyncio.sleep(0)
        record(log, f"tally:{name}:{i}")
        total += i * len(name)
    return total


@refused(
    "LoopShapeError",
    mentions=("shapes.py",),
    work_before_refusal=2,
    why="Two loops interleave in one scope under a plain gather: which loop gets "
    "which checkpoint position depends on scheduling. HINT to expect: "
    "resumable.agather gives each awaitable its own scope.",
)
@resumable
async def plain_gather_of_loops(log: str) -> list[int]:
    """`await asyncio.gather(helper_a(), helper_b())`, each running a loop."""
    return list(await asyncio.gather(tally(log, "left", 5), tally(log, "right", 4)))


TAGS = {
    "python",
    "rust",
    "sqlite",
    "redis",
    "asyncio",
    "pickle",
    "bytecode",
    "crash",
    "resume",
    "lease",
    "fencing",
    "checkpoint",
}


@refused(
    "NonDeterminismError",
    mentions=("shapes.py",),
    why="A set of str iterates in hash order, which differs per process "
    "(PYTHONHASHSEED): a resumed process would skip the wrong items by "
    "position. The rule requires the refusal in the first run, at the first "
    "checkpoint at the latest, and whatever PYTHONHASHSEED the first process "
    "has: the library cannot know the seed of the process that will resume. "
    "Detecting the other order only in the resumed run leaves an execution "
    "that can never finish. HINT to expect: iterate sorted(tags).",
)
@resumable
async def hash_ordered_set(log: str) -> list[str]:
    """`async for tag in aiter_checkpointed(tags)` with `tags` a set of str."""
    pages = []
    async for tag in aiter_checkpointed(TAGS):
        record(log, f"tag:{tag}")
        pages.append(f"{len(pages)}:{tag}")
    return pages
