"""Summarize documents with a (simulated) LLM, then rank the summaries.

Run it, press Ctrl-C (or kill -9 it) part-way, and run it again with the
same id: it continues where it stopped.

    python examples/digest.py nightly-1
"""

from __future__ import annotations

import asyncio
import random
import sys

from resumable import Retry, aiter_checkpointed, amap, resumable, step


async def llm(prompt: str) -> str:
    """Stands in for a model call: slow, and sometimes fails."""
    await asyncio.sleep(0.05)
    if random.random() < 0.05:
        raise ConnectionError("the model endpoint dropped the connection")
    return f"summary({prompt[:24]})"


@step(retries=Retry(attempts=5, on=ConnectionError, wait_initial=0.05))
async def rank(summary: str) -> float:
    return len(await llm("rank: " + summary)) / 100


@resumable
async def digest(docs: list[str]) -> dict[str, object]:
    # Batched: 32 calls in flight, every finished one checkpointed.
    summaries = await amap(llm, docs, concurrency=32, retries=Retry(attempts=5, on=ConnectionError))
    # Sequential: each ranking call is journaled and the loop is checkpointed.
    report = []
    total = 0.0
    async for summary in aiter_checkpointed(summaries):
        score = await rank(summary)
        report.append((score, summary))
        total += score
    report.sort(reverse=True)
    return {"documents": len(docs), "mean score": total / len(docs), "top": report[:3]}


async def main(execution_id: str) -> None:
    docs = [f"document {i}: " + "lorem ipsum " * 20 for i in range(200)]
    result = await digest.options(execution_id=execution_id)(docs)
    print(result)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "digest-example"))
