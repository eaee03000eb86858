"""A loop whose behaviour is driven by data, for property tests.

`program` interprets a list of (op, value) pairs in one checkpointed loop.
Each op changes state in one of the ways a loop body can, so a random op
list combines them in any order:

* rebinding and plain container changes: add, text, append, put, seen,
  swap (rebinds the appended list), mark (rebinds `x`);
* inner containers, changed through `x[k]` and `x[k][j]`: batch (into the
  last batch; cut starts a new one), shard, tree, row;
* methods of plain (non-dataclass) objects: spend, record; and check, whose
  method only reads;
* aliases made before the loop, the body changing the value only through
  them: alias (`alias = items`), view (`view = table`), hold (`holder` keeps
  a reference to `notes`, which the body never names);
* locals passed to functions: push (a module-level helper), heap
  (`heapq.heappush`), insort (`bisect.insort`), score (a helper that only
  reads);
* comprehensions reusing carried names: echo (`[x for x in items]`, `x`
  carried), `summary` after the loop (`total` carried), `used` before it
  (`op`, a loop variable the result reads after the loop);
* closures: near and order (lambdas capturing `tmp`, a temporary set at the
  top of every iteration), bump (a function defined before the loop that
  rebinds `count` with `nonlocal`);
* a lazily created resource that cannot be pickled: fetch;
* control flow: skip (`continue`), stop (`break` when value > 80).

The result is plain data holding every piece of state, so a resumed run
that lost any of it returns something other than an uninterrupted run.
"""

from __future__ import annotations

import bisect
import heapq
import threading

from resumable import aiter_checkpointed, resumable

OPS = (
    *("add", "text", "append", "put", "seen", "swap", "mark", "echo"),
    *("batch", "cut", "shard", "tree", "row"),
    *("spend", "record", "check"),
    *("alias", "view", "hold"),
    *("push", "heap", "insort", "score"),
    *("near", "order", "bump"),
    "fetch",
    *("skip", "stop"),
)


class Budget:
    """A plain class: `spend` changes an attribute and an inner list."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.spent: list[int] = []

    def spend(self, amount: int) -> None:
        self.left -= amount
        self.spent.append(amount)


class Stats:
    """A plain class: `record` changes three attributes, one a list."""

    def __init__(self) -> None:
        self.count = 0
        self.peak = 0
        self.samples: list[int] = []

    def record(self, value: int) -> None:
        self.count += 1
        self.peak = max(self.peak, value)
        self.samples.append(value)


class Rules:
    """A plain class whose method only reads: calling it changes nothing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def allows(self, value: int) -> bool:
        return value < self.limit


class Holder:
    """Keeps a reference to a list; the loop body reaches it only through here."""

    def __init__(self, items: list[int]) -> None:
        self.items = items

    def add(self, value: int) -> None:
        self.items.append(value)


class Resource:
    """A client: it holds a lock, so it cannot be pickled, and it answers
    the same whichever instance is asked (the run rebuilds it, never loads it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def fetch(self, value: int) -> int:
        with self._lock:
            self.calls += 1
            return value * 7 % 31


def push(heap: list[int], value: int) -> None:
    heapq.heappush(heap, value)


def score(values: list[int], value: int) -> int:
    """Only reads its argument."""
    return sum(values) + value


@resumable
async def program(ops: list[tuple[str, int]], every: int) -> dict[str, object]:
    total, text, last = 0, "", None
    items: list[int] = []
    table: dict[int, int] = {}
    seen: set[int] = set()
    x, echo = -1, []
    batches: list[list[int]] = [[]]
    shards: list[list[int]] = [[], [], []]
    tree: dict[int, dict[int, int]] = {0: {}, 1: {}, 2: {}}
    rows = [{"n": 0}, {"n": 0}, {"n": 0}, {"n": 0}]
    # Objects only where an op uses them: a program without them carries
    # plain data alone, which the codec stores with msgpack, not pickle.
    # (The comprehension reuses the loop variable's name `op`, on purpose.)
    used = {op for op, _ in ops}
    budget = Budget(1000) if "spend" in used else None
    stats = Stats() if "record" in used else None
    rules = Rules(50) if "check" in used else None
    passed = 0
    alias = items
    view = table
    notes: list[int] = []
    holder = Holder(notes) if "hold" in used else None
    heap: list[int] = []
    ranked: list[int] = []
    near, order, count = None, [], 0

    def bump(step: int) -> None:
        nonlocal count
        count += step

    client = None
    fetched: list[int] = []
    async for index, (op, value) in aiter_checkpointed(enumerate(ops), every=every):
        tmp = value % 7  # a temporary, captured by the lambdas below
        if op == "skip":
            continue
        if op == "stop" and value > 80:
            break
        if op == "add":
            total += value
        elif op == "text":
            text += chr(97 + value % 26)
        elif op == "append":
            items.append(value)
        elif op == "put":
            table[value % 7] = table.get(value % 7, 0) + value
        elif op == "seen":
            seen.add(value % 11)
        elif op == "swap":
            items = [*reversed(items), value]  # rebinding the appended list
        elif op == "mark":
            x = value
        elif op == "echo":
            echo = [x for x in items]  # noqa: C416 (reusing the carried `x` is the point)
        elif op == "batch":
            batches[-1].append(value)
        elif op == "cut":
            batches.append([])
        elif op == "shard":
            shards[value % 3].append(value)
        elif op == "tree":
            tree[value % 3][value % 5] = value
        elif op == "row":
            rows[value % 4]["n"] += 1
        elif op == "spend":
            budget.spend(value)
        elif op == "record":
            stats.record(value)
        elif op == "check":
            passed += rules.allows(value)
        elif op == "alias":
            alias.append(-value)
        elif op == "view":
            view[value % 5] = -value
        elif op == "hold":
            holder.add(value)
        elif op == "push":
            push(heap, value)
        elif op == "heap":
            heapq.heappush(heap, -value)
        elif op == "insort":
            bisect.insort(ranked, value)
        elif op == "score":
            total += score(items, value) % 13
        elif op == "near":
            near = max([*items, value], key=lambda h: (-abs(h - tmp), h))
        elif op == "order":
            order = sorted(seen, key=lambda s: ((s * tmp) % 11, s))
        elif op == "bump":
            bump(value % 3 + 1)
        elif op == "fetch":
            if client is None:
                client = Resource()
            fetched.append(client.fetch(value))
        last = (op, value)
    summary = [f"{k}:{total}" for k, total in table.items()]  # `total` is carried too
    return {
        "loop variables": (index, op, value) if ops else None,  # the last iteration's
        "total": total,
        "text": text,
        "last": last,
        "items": items,
        "table": table,
        "seen": sorted(seen),
        "x": x,
        "echo": echo,
        "batches": batches,
        "shards": shards,
        "tree": tree,
        "rows": rows,
        "budget": vars(budget) if budget else None,
        "stats": vars(stats) if stats else None,
        "passed": passed,
        "alias": alias,
        "notes": notes,
        "heap": heap,
        "ranked": ranked,
        "near": near,
        "order": order,
        "count": count,
        "fetched": fetched,
        "summary": summary,
    }
