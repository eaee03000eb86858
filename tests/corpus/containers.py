"""The standard library's containers as loop state: Counter, defaultdict,
deque(maxlen=...), heapq, bisect, sets, `dict.setdefault(k, []).append(v)`.

Several are changed only through a function they are passed to
(`heapq.heappush(heap, x)`, `bisect.insort(ranked, x)`) or through an item
(`groups[k].append(x)`): the analysis must see those as changes.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter, OrderedDict, defaultdict, deque

from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed, resumable

LINES = [
    "the quick brown fox",
    "jumps over the lazy dog",
    "the dog sleeps",
    "a fox is quick",
    "over and over the fox runs",
    "lazy afternoon for the dog",
    "brown leaves fall",
    "the end",
]


@exact()
@resumable
async def word_counts(log: str) -> dict[str, object]:
    """`counts.update(words)` and `lengths[len(w)] += 1` on two Counters."""
    counts: Counter[str] = Counter()
    lengths: Counter[int] = Counter()
    async for n, line in aiter_checkpointed(enumerate(LINES)):
        words = line.split()
        record(log, f"line:{n}")
        counts.update(words)
        for word in words:
            lengths[len(word)] += 1
    return {"top": counts.most_common(5), "lengths": sorted(lengths.items())}


@exact()
@resumable
async def group_by_key(log: str) -> dict[str, list[int]]:
    """`groups[k].append(x)` on a defaultdict(list): the list is reached
    through an item, never named in the body."""
    groups: defaultdict[str, list[int]] = defaultdict(list)
    async for i in aiter_checkpointed(range(12)):
        record(log, f"group:{i}")
        groups[("even", "odd")[i % 2] + str(i % 3)].append(i * i)
    return dict(groups)


@exact()
@resumable
async def sliding_window(log: str) -> dict[str, object]:
    """A bounded `deque(maxlen=3)` as a moving window, and its averages."""
    window: deque[float] = deque(maxlen=3)
    averages = []
    async for i in aiter_checkpointed(range(10)):
        value = (i * 37 % 11) * 1.5
        record(log, f"window:{i}")
        window.append(value)
        averages.append(round(sum(window) / len(window), 6))
    return {"averages": averages, "window": list(window)}


@exact(
    why="The heap is changed only by heapq functions it is passed to; the README's"
    "list of changes includes 'passing it to a function', and a heap is plain data."
)
@resumable
async def top_k_heap(log: str) -> list[list[object]]:
    """Top 3 by score with `heapq.heappush` / `heappop` on a plain list."""
    heap: list[tuple[float, str]] = []
    async for i in aiter_checkpointed(range(12)):
        score = (i * 7919 % 101) / 10
        record(log, f"heap:{i}")
        heapq.heappush(heap, (score, f"item-{i}"))
        if len(heap) > 3:
            heapq.heappop(heap)
    return [list(entry) for entry in sorted(heap, reverse=True)]


@exact()
@resumable
async def insort_ranking(log: str) -> dict[str, object]:
    """`bisect.insort(ranked, x)` keeps a list sorted as items arrive."""
    ranked: list[int] = []
    medians = []
    async for i in aiter_checkpointed(range(11)):
        value = i * 7919 % 97
        record(log, f"rank:{i}")
        bisect.insort(ranked, value)
        medians.append(ranked[len(ranked) // 2])
    return {"ranked": ranked, "medians": medians}


URLS = [f"https://site.test/page/{i % 7}" for i in range(13)]


@exact()
@resumable
async def dedupe_urls(log: str) -> dict[str, object]:
    """A set of seen URLs with `continue` on duplicates; the result lists the
    set sorted (its own order is per process)."""
    seen: set[str] = set()
    fetched = []
    async for n, url in aiter_checkpointed(enumerate(URLS)):
        record(log, f"url:{n}")
        if url in seen:
            continue
        seen.add(url)
        fetched.append(n)
    return {"fetched": fetched, "seen": sorted(seen)}


@exact()
@resumable
async def setdefault_index(log: str) -> dict[str, list[str]]:
    """An inverted index with `index.setdefault(word, []).append(doc)`."""
    index: dict[str, list[str]] = {}
    async for n, line in aiter_checkpointed(enumerate(LINES)):
        record(log, f"index:{n}")
        for word in set(line.split()):
            index.setdefault(word, []).append(f"doc{n}")
    return {word: sorted(docs) for word, docs in sorted(index.items())}


@exact()
@resumable
async def lru_cache_dict(log: str) -> dict[str, object]:
    """An OrderedDict used as an LRU: `move_to_end` and `popitem(last=False)`."""
    cache: OrderedDict[int, int] = OrderedDict()
    hits = 0
    async for i in aiter_checkpointed(range(14)):
        key = i * 5 % 6
        record(log, f"lookup:{i}")
        if key in cache:
            cache.move_to_end(key)
            hits += 1
        else:
            cache[key] = key * key
            if len(cache) > 3:
                cache.popitem(last=False)
    return {"hits": hits, "cache": list(cache.items())}
