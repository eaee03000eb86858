"""Bytes written by a 10,000-iteration loop that appends a 200-byte result
per iteration, and by loops building a dict and a set of 200-byte values: counted by the store (keys and values of every write), and,
for Redis, by the server itself (INFO stats: total_net_input_bytes, which
also counts protocol framing). Next to it, what a full-snapshot checkpoint
(the whole result list at every iteration, as source-rewriting tools do)
would write.

Target (README, "Benchmarks"): <= 1.5x the results' own size, for what the store
writes and for what reaches the Redis server (every command of the run:
create, one WRITE per iteration, the final update and release).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments, keyed_if_shared, redis_server
from resumable import aiter_checkpointed, open_store, resumable

RESULT = 200
# Text that compresses like prose (about 2-3x with zlib), not a padded
# counter (which compresses 50x and would flatter compressed chunks).
_WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "model answer tokens request latency summary document customer invoice region batch"
).split()


def result_text(i: int) -> str:
    """A 200-character result that differs per iteration."""
    words, state = [], i * 2654435761 % 2**32
    while sum(len(w) + 1 for w in words) < RESULT:
        state = state * 1103515245 + 12345 & 0x7FFFFFFF
        words.append(_WORDS[state % len(_WORDS)])
    return f"{i:08d} {' '.join(words)}"[:RESULT]


@resumable
async def build(n: int) -> int:
    results = []
    async for i in aiter_checkpointed(range(n)):
        results.append(result_text(i))
    return len(results)


@resumable
async def build_dict(n: int) -> int:
    results = {}
    async for i in aiter_checkpointed(range(n)):
        results[i] = result_text(i)
    return len(results)


@resumable
async def build_set(n: int) -> int:
    seen = set()
    async for i in aiter_checkpointed(range(n)):
        seen.add(result_text(i))
    return len(seen)


async def server_input_bytes(url: str) -> int:
    import redis.asyncio as redis

    client = redis.from_url(url)
    info = await client.info("stats")
    await client.aclose()
    return int(info["total_net_input_bytes"])


def main() -> None:
    args = arguments(__doc__ or "")
    n = 1000 if args.quick else 10_000
    own = n * RESULT
    snapshot = sum(i * RESULT for i in range(1, n + 1))
    report = Report(
        f"Bytes written: {n:,}-iteration loop appending {RESULT}-byte results", args.quick
    )
    report.add(Sample("the results' own size", [own], "B"))
    report.add(Sample("full-snapshot checkpoints (whole list every iteration)", [snapshot], "B"))
    with tempfile.TemporaryDirectory() as tmp, redis_server(args.redis) as redis_url:
        urls = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{Path(tmp) / 'b.db'}",
            "redis": redis_url,
        }
        for label, url in urls.items():
            if label not in args.stores:
                continue
            store = open_store(url)
            for shape, job in (("list", build), ("dict", build_dict), ("set", build_set)):
                before = store.stats.bytes_written
                server_before = asyncio.run(server_input_bytes(url)) if label == "redis" else 0
                keyed_if_shared(label, lambda j=job, s=store: asyncio.run(j.options(store=s)(n)))()
                written = store.stats.bytes_written - before
                what = f"{label}, {shape}"
                report.add(Sample(f"{what}: bytes the store wrote", [written], "B"))
                report.target(f"{what}: written / results' size", written / own, 1.5, unit="x")
                if label != "redis":
                    continue
                server = asyncio.run(server_input_bytes(url)) - server_before
                report.add(Sample(f"{what}: bytes the server received (INFO stats)", [server], "B"))
                report.target(
                    f"{what}: wire bytes (total_net_input_bytes) / payload",
                    server / own,
                    1.5,
                    unit="x",
                )
                report.notes.append(
                    f"{what}: {server / n:,.0f} bytes on the wire per iteration, "
                    f"{written / n:,.0f} of them the records' keys and values"
                )
            asyncio.run(store.close())
    report.notes.append(f"full snapshot / results' size: {snapshot / own:,.0f}x")
    report.show("bytes", digits=0)
    report.save("bytes")


if __name__ == "__main__":
    main()
