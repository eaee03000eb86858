"""Control flow around and inside checkpointed loops: nesting, loops in a
row, loops in helper coroutines and in `amap`/`agather` items, `match`,
walrus, try/except/finally, continue/break, `every=3`, `nonlocal`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import resumable
from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed

MONTHS = ["2026-01", "2026-02", "2026-03", "2026-04"]


def amount(month: str, day: int) -> int:
    return (int(month[-2:]) * 31 + day * 17) % 113


@exact(redis=True)
@resumable.resumable
async def monthly_rollup(log: str) -> dict[str, object]:
    """Nested checkpointed loops: days inside months; the outer body records
    after its inner loop."""
    per_month: dict[str, int] = {}
    grand_total = 0
    async for month in aiter_checkpointed(MONTHS):
        month_total = 0
        async for day in aiter_checkpointed(range(1, 5)):
            record(log, f"day:{month}:{day}")
            month_total += amount(month, day)
        record(log, f"month:{month}")
        per_month[month] = month_total
        grand_total += month_total
    return {"per_month": per_month, "total": grand_total}


@exact()
@resumable.resumable
async def extract_then_load(log: str) -> dict[str, object]:
    """Two loops one after another: the first builds a list, the second
    consumes it into a dict and a running sum."""
    extracted = []
    async for i in aiter_checkpointed(range(7)):
        record(log, f"extract:{i}")
        extracted.append({"id": i, "value": i * i % 10})
    loaded: dict[str, int] = {}
    checksum = 0
    async for row in aiter_checkpointed(extracted):
        record(log, f"load:{row['id']}")
        loaded[f"k{row['id']}"] = row["value"]
        checksum = (checksum * 31 + row["value"]) % 1_000_003
    return {"loaded": loaded, "checksum": checksum}


async def stream_rows(n: int) -> AsyncIterator[dict[str, int]]:
    """An async generator source, as a database cursor or a paginated API gives."""
    for i in range(n):
        await asyncio.sleep(0)
        yield {"id": i, "value": (i * 7919) % 97}


@exact()
@resumable.resumable
async def async_generator_source(log: str) -> dict[str, object]:
    """`aiter_checkpointed(stream_rows())`: on resume the finished prefix of
    the (deterministic) generator is consumed and discarded."""
    buckets: dict[str, list[int]] = {"low": [], "high": []}
    largest = -1
    async for row in aiter_checkpointed(stream_rows(9)):
        record(log, f"row:{row['id']}")
        buckets["high" if row["value"] > 48 else "low"].append(row["id"])
        largest = max(largest, row["value"])
    return {"buckets": buckets, "largest": largest}


async def score_partition(log: str, partition: str, rows: int) -> dict[str, int]:
    best = 0
    count = 0
    async for r in aiter_checkpointed(range(rows)):
        record(log, f"score:{partition}:{r}")
        best = max(best, (r * 7 + len(partition)) % 13)
        count += 1
    return {"best": best, "count": count}


@exact()
@resumable.resumable
async def loops_in_helpers(log: str) -> dict[str, object]:
    """A checkpointed loop in a helper coroutine awaited three times."""
    results = {}
    for partition in ("alpha", "beta", "gamma"):
        results[partition] = await score_partition(log, partition, 4)
    return results


async def clean_document(log: str, doc: int) -> dict[str, object]:
    words: list[str] = []
    chars = 0
    async for k in aiter_checkpointed(range(3)):
        await asyncio.sleep(0)  # items interleave
        word = f"w{doc}{k}"
        record(log, f"clean:{doc}:{k}")
        words.append(word)
        chars += len(word)
    return {"doc": doc, "words": words, "chars": chars}


@exact(
    in_flight_writes=3,
    why="Loops inside amap items are keyed by item (README, 'amap'). Writers: 3 "
    "items and the fan-out's flush of finished items, so 3 writes in flight.",
)
@resumable.resumable
async def loops_in_amap_items(log: str) -> list[dict[str, object]]:
    """`resumable.amap` over documents, each item running its own loop."""
    return await resumable.amap(lambda doc: clean_document(log, doc), range(6), concurrency=3)


@exact(in_flight_writes=2)  # two awaitables and the fan-out's flush
@resumable.resumable
async def loops_in_agather(log: str) -> list[dict[str, int]]:
    """`resumable.agather` of helper coroutines that each run a loop."""
    return list(
        await resumable.agather(
            score_partition(log, "north", 5),
            score_partition(log, "south", 3),
        )
    )


EVENTS = [
    {"type": "signup", "user": "ann"},
    {"type": "purchase", "user": "ann", "cents": 1200},
    {"type": "signup", "user": "bob"},
    {"type": "refund", "user": "ann", "cents": 200},
    {"type": "purchase", "user": "bob", "cents": 300},
    {"type": "ping"},
    {"type": "purchase", "user": "cid", "cents": 50},
    {"type": "churn", "user": "bob"},
]


@exact()
@resumable.resumable
async def match_events(log: str) -> dict[str, object]:
    """A `match` statement with class/mapping patterns and guards."""
    users: set[str] = set()
    balance: dict[str, int] = {}
    unknown = 0
    async for n, event in aiter_checkpointed(enumerate(EVENTS)):
        record(log, f"event:{n}")
        match event:
            case {"type": "signup", "user": user}:
                users.add(user)
            case {"type": "purchase", "user": user, "cents": cents} if user in users:
                balance[user] = balance.get(user, 0) + cents
            case {"type": "refund", "user": user, "cents": cents}:
                balance[user] = balance.get(user, 0) - cents
            case {"type": "churn", "user": user}:
                users.discard(user)
            case _:
                unknown += 1
    return {"users": sorted(users), "balance": balance, "unknown": unknown}


DOCS = [
    "short",
    "a somewhat longer document",
    "tiny",
    "this one has quite a few words in it",
    "two words",
    "another document with five words",
]


@exact()
@resumable.resumable
async def walrus_filter(log: str) -> dict[str, object]:
    """`if (n := len(words)) > 3:` in the body; `longest` keeps a tuple."""
    long_docs = []
    longest = (0, "")
    async for doc in aiter_checkpointed(DOCS):
        record(log, f"walrus:{doc}")
        if (n := len(doc.split())) > 3:
            long_docs.append(n)
        if n > longest[0]:
            longest = (n, doc)
    return {"long": long_docs, "longest": list(longest)}


class Transient(Exception):
    pass


@exact()
@resumable.resumable
async def try_except_finally(log: str) -> dict[str, object]:
    """try/except/else/finally in the body, each branch changing state."""
    attempts = 0
    failures = []
    ok = []
    async for i in aiter_checkpointed(range(10)):
        record(log, f"try:{i}")
        try:
            if i % 4 == 1:
                raise Transient(f"item {i}")
            value = 100 // (i % 5)
        except Transient as exc:
            failures.append(str(exc))
        except ZeroDivisionError:
            failures.append(f"zero at {i}")
        else:
            ok.append(value)
        finally:
            attempts += 1
    return {"attempts": attempts, "failures": failures, "ok": ok}


@exact()
@resumable.resumable
async def continue_and_break(log: str) -> dict[str, object]:
    """`continue` on some items, `break` once a threshold is passed."""
    taken = []
    skipped = 0
    running = 0
    async for i in aiter_checkpointed(range(20)):
        record(log, f"take:{i}")
        if i % 3 == 2:
            skipped += 1
            continue
        running += i
        taken.append(i)
        if running > 40:
            break
    return {"taken": taken, "skipped": skipped, "running": running}


@exact()
@resumable.resumable
async def every_three(log: str) -> dict[str, object]:
    """`every=3`: a checkpoint after each third iteration."""
    totals: dict[str, int] = {}
    order = []
    count = 0
    async for i in aiter_checkpointed(range(11), every=3):
        record(log, f"every:{i}")
        key = "abc"[i % 3]
        totals[key] = totals.get(key, 0) + i
        order.append(key)
        count += 1
    return {"totals": totals, "order": "".join(order), "count": count}


@exact()
@resumable.resumable
async def nonlocal_emitter(log: str) -> dict[str, object]:
    """A nested function rebinding `nonlocal` counters and appending to a
    list of the enclosing frame, called from the body."""
    emitted = 0
    size = 0
    out: list[str] = []

    def emit(line: str) -> None:
        nonlocal emitted, size
        emitted += 1
        size += len(line)
        out.append(line)

    async for i in aiter_checkpointed(range(9)):
        record(log, f"emit:{i}")
        emit(f"line {i}")
        if i % 4 == 0:
            emit(f"marker {i}")
    return {"emitted": emitted, "size": size, "out": out}
