"""Plain (non-dataclass) objects whose methods change them: the state lives
in attributes the loop's bytecode never touches directly.

A plain object of the user's own class is data unless it holds a resource;
when the body calls its methods, it is changed, so it is carried (pickled)
like a dataclass would be.
"""

from __future__ import annotations

import math

from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed, resumable


class BudgetExceeded(Exception):
    pass


class Budget:
    """Spend against a limit; refuses to go over it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self.entries: list[tuple[str, int]] = []

    def spend(self, amount: int, what: str) -> None:
        if self.spent + amount > self.limit:
            raise BudgetExceeded(f"{what}: {self.spent} + {amount} > {self.limit}")
        self.spent += amount
        self.entries.append((what, amount))

    @property
    def left(self) -> int:
        return self.limit - self.spent


@exact(redis=True)
@resumable
async def spend_budget(log: str) -> dict[str, object]:
    """`budget.spend(10)` in the body; the loop stops when it is exhausted."""
    budget = Budget(limit=95)
    done = []
    async for task in aiter_checkpointed([f"task-{i}" for i in range(14)]):
        record(log, f"spend:{task}")
        try:
            budget.spend(10, task)
        except BudgetExceeded:
            break
        done.append(task)
    return {"done": done, "left": budget.left, "entries": budget.entries}


class RunningStats:
    """Welford's online mean and variance."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self._m2 = 0.0
        self.low = math.inf
        self.high = -math.inf

    def observe(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (x - self.mean)
        self.low = min(self.low, x)
        self.high = max(self.high, x)

    def summary(self) -> dict[str, float]:
        variance = self._m2 / (self.n - 1) if self.n > 1 else 0.0
        return {
            "n": self.n,
            "mean": self.mean,
            "stdev": math.sqrt(variance),
            "low": self.low,
            "high": self.high,
        }


def latency_ms(i: int) -> float:
    return 20 + (i * 7919 % 113) / 3


@exact()
@resumable
async def latency_stats(log: str) -> dict[str, object]:
    """Two stats objects updated through `.observe(x)` (a method name that
    says nothing about changing the object); one is skipped in some iterations."""
    fast = RunningStats()
    slow = RunningStats()
    async for i in aiter_checkpointed(range(12)):
        ms = latency_ms(i)
        record(log, f"latency:{i}")
        fast.observe(ms)
        if ms > 40:
            slow.observe(ms)
    return {"all": fast.summary(), "slow": slow.summary()}


class Collector:
    """Gathers rows into a list it owns, with a dedupe index."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._rows: list[dict[str, object]] = []
        self._keys: set[str] = set()

    def collect(self, key: str, row: dict[str, object]) -> bool:
        if key in self._keys:
            return False
        self._keys.add(key)
        self._rows.append(row)
        return True

    def rows(self) -> list[dict[str, object]]:
        return list(self._rows)


@exact()
@resumable
async def collect_rows(log: str) -> dict[str, object]:
    """An object made before the loop holds a list the body appends to
    through a method; a duplicate count beside it."""
    collector = Collector("signups")
    duplicates = 0
    async for i in aiter_checkpointed(range(12)):
        email = f"user{i % 8}@example.com"
        record(log, f"signup:{i}")
        if not collector.collect(email, {"email": email, "seq": i}):
            duplicates += 1
    return {"rows": collector.rows(), "duplicates": duplicates}


class Progress:
    def __init__(self) -> None:
        self.done = 0
        self.failed: list[int] = []


@exact()
@resumable
async def attribute_writes(log: str) -> dict[str, object]:
    """Attributes of a plain object assigned directly in the body."""
    progress = Progress()
    async for i in aiter_checkpointed(range(10)):
        record(log, f"job:{i}")
        if i % 4 == 3:
            progress.failed = [*progress.failed, i]
        else:
            progress.done += 1
    return {"done": progress.done, "failed": progress.failed}


class Indexer:
    """A service object whose method is a `@resumable` function: `self` is
    stored with the arguments (README, "The API")."""

    def __init__(self, shards: int) -> None:
        self.shards = shards

    @resumable
    async def run(self, log: str) -> dict[str, object]:
        per_shard = [0] * self.shards
        indexed = []
        async for doc in aiter_checkpointed([f"doc-{i}" for i in range(9)]):
            record(log, f"index:{doc}")
            per_shard[len(doc) * int(doc[4:]) % self.shards] += 1
            indexed.append(doc.upper())
        return {"per_shard": per_shard, "indexed": indexed}


INDEXER = Indexer(shards=3)
exact(call="INDEXER.run")(Indexer.run)
