"""Slow jobs for the command-line tests: a loop, then an amap, with a delay
per item so another process can watch them progress.

Run one in a process of its own (and print its result as JSON):
`python -m jobs.watched STORE ID N DELAY [fail|token]`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass

from resumable import aiter_checkpointed, amap, resumable, step

SECRET = "s3cr3t-t0ken-value"  # an argument value that must never be printed or logged


async def _square(x: int, delay: float) -> int:
    await asyncio.sleep(delay)
    return x * x


@step
async def publish(total: int) -> str:
    return f"published {total}"


@resumable
async def watched(
    n: int, delay: float, *, fail: bool = False, token: str = ""
) -> dict[str, object]:
    total = 0
    async for i in aiter_checkpointed(range(n)):
        await asyncio.sleep(delay)
        total += i
    squares = await amap(lambda x: _square(x, delay), range(n), concurrency=4)
    note = await publish(total)
    if fail:
        raise RuntimeError(f"asked to fail after {n} items")
    return {"total": total, "squares": sum(squares), "note": note, "token_chars": len(token)}


@dataclass
class Payload:
    """Not plain data: stored pickled, so `show` must describe it unimported."""

    secret: str


@resumable
async def echo(value: object) -> str:
    return type(value).__name__


@step
async def reveal(secret: str) -> str:
    return secret.upper()


@resumable
async def leaky(secret: str) -> str:
    """Its argument, its steps' results, its carried local, its items'
    results, its return value and its exception all hold `secret`."""
    carried = ""
    async for _ in aiter_checkpointed(range(3)):
        carried += await reveal(secret)
    results = await amap(reveal, [secret] * 3)
    if "fail" in secret:
        raise ValueError(f"refusing {secret}")
    return carried + "".join(results)


def main() -> None:
    store, execution_id, n, delay, *flags = sys.argv[1:]
    options = {"fail": "fail" in flags, "token": SECRET if "token" in flags else ""}
    job = watched.options(execution_id=execution_id, store=store)
    result = asyncio.run(job(int(n), float(delay), **options))  # type: ignore[arg-type]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
