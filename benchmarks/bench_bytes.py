"""Bytes written by a 10,000-iteration loop that appends a 200-byte result
per iteration: counted by the store (keys and values of every write), and,
for Redis, by the server itself (INFO stats: total_net_input_bytes, which
also counts protocol framing). Next to it, what a full-snapshot checkpoint
(the whole result list at every iteration, as source-rewriting tools do)
would write.

Target (DESIGN §11): <= 1.5x the results' own size, for what the store
writes and for what reaches the Redis server (every command of the run:
create, one WRITE per iteration, the final update and release).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from benchmarks._harness import Report, Sample, arguments, redis_server
from resumable import aiter_checkpointed, open_store, resumable

RESULT = 200


@resumable
async def build(n: int) -> int:
    results = []
    async for i in aiter_checkpointed(range(n)):
        results.append(f"{i:08d}".ljust(RESULT, "x"))
    return len(results)


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
            before = store.stats.bytes_written
            server_before = asyncio.run(server_input_bytes(url)) if label == "redis" else 0
            asyncio.run(build.options(store=store)(n))
            written = store.stats.bytes_written - before
            report.add(Sample(f"{label}: bytes the store wrote", [written], "B"))
            report.target(f"{label}: written / results' size", written / own, 1.5, unit="x")
            if label == "redis":
                server = asyncio.run(server_input_bytes(url)) - server_before
                report.add(Sample("redis: bytes the server received (INFO stats)", [server], "B"))
                report.target(
                    "redis: wire bytes (total_net_input_bytes) / payload, appended-list loop",
                    server / own,
                    1.5,
                    unit="x",
                )
                report.notes.append(
                    f"redis: {server / n:,.0f} bytes on the wire per iteration, "
                    f"{written / n:,.0f} of them the records' keys and values"
                )
            asyncio.run(store.close())
    report.notes.append(f"full snapshot / results' size: {snapshot / own:,.0f}x")
    report.show("bytes", digits=0)
    report.save("bytes")


if __name__ == "__main__":
    main()
