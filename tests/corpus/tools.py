"""Everyday tools in loops: tqdm bars, loggers, hashlib, random.Random,
itertools.count, iterators advanced in the body, an asyncio.Queue.

Some are resources whose state does not matter to the result (a progress
bar, a logger): they must not be carried and not be refused. Some are data
behind a method-call interface (`random.Random`, `itertools.count`, a list
iterator): they survive a pickle round trip and must be carried. Some hold
state that can be neither carried nor rebuilt (a hash object, a generator,
a queue holding items between iterations): they must be refused, clearly.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import random
import sqlite3

from tqdm import tqdm

from corpus import exact, refused
from corpus._log import record
from resumable import aiter_checkpointed, resumable

FILES = [f"part-{i:03d}.parquet" for i in range(10)]


def size_of(name: str) -> int:
    return sum(ord(c) for c in name) * 97 % 10_000


@exact(
    why="tqdm wraps the iterable: the loop positions it like any sequence "
    "(it has a length); the bar restarting at the resume point is cosmetic."
)
@resumable
async def tqdm_over_iterable(log: str) -> dict[str, int]:
    """`aiter_checkpointed(tqdm(files))`: the bar wraps the iterable."""
    sizes: dict[str, int] = {}
    async for name in aiter_checkpointed(tqdm(FILES, desc="upload", mininterval=0)):
        record(log, f"upload:{name}")
        sizes[name] = size_of(name)
    return sizes


@exact(
    redis=True,
    why="The bar is a resource (README, 'What gets carried', names progress bars): updated by "
    "`bar.update(1)`, never part of the result, rebuilt by the replayed code.",
)
@resumable
async def tqdm_manual_bar(log: str) -> dict[str, object]:
    """`bar = tqdm(total=...)` before the loop, `bar.update(1)` in it."""
    bar = tqdm(total=len(FILES), desc="copy", mininterval=0)
    copied = []
    total_bytes = 0
    async for name in aiter_checkpointed(FILES):
        record(log, f"copy:{name}")
        copied.append(name)
        total_bytes += size_of(name)
        bar.update(1)
        bar.set_postfix(bytes=total_bytes)
    bar.close()
    return {"copied": copied, "bytes": total_bytes}


@exact(why="Loggers are resources (README, 'What gets carried'): never carried, never refused.")
@resumable
async def logged_pipeline(log: str) -> dict[str, object]:
    """A module logger and a LoggerAdapter with context, called in the body."""
    logger = logging.getLogger("corpus.pipeline")
    logger.setLevel(logging.INFO)
    job_log = logging.LoggerAdapter(logger, {"job": "nightly"})
    processed = []
    async for name in aiter_checkpointed(FILES):
        record(log, f"logged:{name}")
        size = size_of(name)
        if size > 5000:
            job_log.warning("large file %s: %d bytes", name, size)
        logger.info("processed %s", name)
        processed.append([name, size])
    return {"processed": processed}


@refused(
    "CheckpointError",
    variable="digest",
    why="The digest's state is the result and a hash object cannot be "
    "pickled; the replayed code would make a fresh hash of only the remaining "
    "chunks. Neither carried nor safe to leave out: refuse.",
)
@resumable
async def sha256_of_chunks(log: str) -> str:
    """`digest.update(chunk)` per item, `hexdigest()` after the loop."""
    digest = hashlib.sha256()
    async for i in aiter_checkpointed(range(10)):
        record(log, f"chunk:{i}")
        digest.update(f"chunk-{i}:{size_of(FILES[i])}".encode())
    return digest.hexdigest()


@exact(
    why="A random.Random instance is data: its state round-trips through "
    "pickle, and every draw changes it. Restarting it from its seed on resume "
    "would repeat draws."
)
@resumable
async def seeded_sampling(log: str) -> dict[str, object]:
    """Draws from a `random.Random(seed)` made before the loop."""
    rng = random.Random(20261123)
    picks = []
    async for i in aiter_checkpointed(range(10)):
        record(log, f"draw:{i}")
        pair = rng.sample(FILES, 2)
        picks.append([pair, round(rng.random(), 12), rng.randint(1, 6)])
    return {"picks": picks}


@exact(
    why="itertools.count is a counter behind `next()`: its state (the next "
    "number) survives pickle on 3.11-3.13 and is its repr everywhere. Carrying "
    "it is what a user wants; restarting it would hand out the same ids twice."
)
@resumable
async def ticket_numbers(log: str) -> dict[str, int]:
    """`next(ids)` on an `itertools.count(1000)` made before the loop."""
    ids = itertools.count(1000, 5)
    tickets: dict[str, int] = {}
    async for name in aiter_checkpointed(FILES):
        record(log, f"ticket:{name}")
        if size_of(name) % 3:
            tickets[name] = next(ids)
    return tickets


REPLIES = [f"reply-{i}" for i in range(20)]


@exact(
    why="A list iterator is data: it pickles with its list and position. Refusing "
    "it would be allowed by the rule, but a demanding user wants it carried."
)
@resumable
async def paired_with_list_iterator(log: str) -> list[list[str]]:
    """`next(replies)` on an iterator over a list, advanced by the body
    (twice in some iterations)."""
    replies = iter(REPLIES)
    pairs = []
    async for name in aiter_checkpointed(FILES):
        record(log, f"pair:{name}")
        reply = next(replies)
        if name.endswith(("3.parquet", "7.parquet")):
            reply += "+" + next(replies)
        pairs.append([name, reply])
    return pairs


@refused(
    "CheckpointError",
    variable="chunks",
    why="A generator advanced by the body holds its position in a frame that "
    "cannot be pickled; the replay would restart it from the beginning.",
)
@resumable
async def generator_advanced_in_body(log: str) -> list[str]:
    """`next(chunks)` on a generator expression made before the loop."""
    chunks = (name.upper() for name in FILES for _ in range(2))
    pairs = []
    async for name in aiter_checkpointed(FILES):
        record(log, f"gen:{name}")
        pairs.append(f"{name}={next(chunks)}")
    return pairs


@refused(
    "CheckpointError",
    variable="queue",
    why="Items stay in the queue from one iteration to the next: that is state. "
    "An asyncio.Queue is a synchronisation resource, never pickled (README, 'What gets carried') "
    "and not safe to leave out while it holds items: refuse.",
)
@resumable
async def queue_in_body(log: str) -> list[list[str]]:
    """Produce into an `asyncio.Queue` every iteration, consume pairs."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    pairs = []
    async for name in aiter_checkpointed(FILES):
        record(log, f"queue:{name}")
        await queue.put(name)
        if queue.qsize() >= 2:
            pairs.append([queue.get_nowait(), queue.get_nowait()])
    return pairs


@refused(
    "CheckpointError",
    variable="db",
    why="The rows inserted so far live in an in-memory SQLite connection, which "
    "cannot be pickled; the replayed code makes an empty one. State that can be "
    "neither carried nor left out: refuse.",
)
@resumable
async def sqlite_scratch_table(log: str) -> list[list[object]]:
    """Rows inserted into an in-memory SQLite table, aggregated after the loop."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE uploads (name TEXT, size INTEGER)")
    async for name in aiter_checkpointed(FILES):
        record(log, f"insert:{name}")
        db.execute("INSERT INTO uploads VALUES (?, ?)", (name, size_of(name)))
    rows = db.execute("SELECT size % 3, count(*), sum(size) FROM uploads GROUP BY 1").fetchall()
    db.close()
    return [list(row) for row in rows]
