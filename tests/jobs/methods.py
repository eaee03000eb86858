"""@resumable methods: the object is stored with the arguments, so a fresh
process rebuilds it and calls the method again.

`crawl` is a bound method at module level, so that the crash tests' runner
(`python -m jobs.child STORE ID methods.crawl N LOG DELAY`) can start it like
a function. Side effects go to a log file, one line per loop-body run.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from jobs.pipeline import record
from resumable import aiter_checkpointed, resumable

RUNS: list[str] = []  # in-process side effects, for the in-process tests


class Crawler:
    """Plain data only: pickled by reference to its class, like most objects."""

    def __init__(self, base: str, step: int = 1) -> None:
        self.base = base
        self.step = step

    @resumable
    async def crawl(self, n: int, log_path: str, delay: float) -> dict[str, object]:
        pages = []
        async for i in aiter_checkpointed(range(n)):
            await asyncio.sleep(delay)
            record(log_path, f"crawl:{i}")
            pages.append(f"{self.base}{i * self.step}")
        return {"pages": pages, "base": self.base}

    @resumable
    async def fetch(self, page: int) -> str:
        RUNS.append(f"fetch:{page}")
        return f"{self.base}{page * self.step}"

    @resumable
    async def fetch_all(self, n: int) -> list[str]:
        """Awaits another @resumable method of its own: a child execution."""
        found = []
        async for i in aiter_checkpointed(range(n)):
            found.append(await self.fetch(i))
        return found

    @staticmethod
    @resumable
    async def normalize(url: str) -> str:
        RUNS.append(f"normalize:{url}")
        return url.rstrip("/") + "/"

    class Inner:
        @resumable
        async def deep(self, x: int) -> int:
            return x * 2


crawl = Crawler("https://example.test/p/", step=10).crawl


def expected_crawl(n: int) -> dict[str, object]:
    base = "https://example.test/p/"
    return {"pages": [f"{base}{i * 10}" for i in range(n)], "base": base}


def ran(tag: str) -> None:
    RUNS.append(tag)  # a side effect outside the loop's own state


class Counter:
    """A method whose loop changes `self`: the object is carried, and comes
    back from the checkpoint on resume."""

    def __init__(self) -> None:
        self.total = 0
        self.seen: list[int] = []

    @resumable
    async def count(self, n: int) -> tuple[int, list[int]]:
        async for i in aiter_checkpointed(range(n)):
            ran(f"count:{i}")
            self.total += i
            self.seen.append(i)
        return self.total, self.seen


class Base:
    def __init__(self, name: str) -> None:
        self.name = name

    @resumable
    async def greet(self, punctuation: str) -> str:
        RUNS.append(f"greet:{self.name}")
        return f"{self.describe()}{punctuation}"

    def describe(self) -> str:
        return f"base {self.name}"


class Sub(Base):
    def describe(self) -> str:
        return f"sub {self.name}"


class WithSocket:
    """Holds an open socket: cannot be pickled, so cannot be `self` of a
    stored call."""

    def __init__(self) -> None:
        self.conn = socket.socket()

    @resumable
    async def run(self, n: int) -> int:
        return n


class WithClient:
    """Holds an httpx client (an SSL context, locks): cannot be pickled."""

    def __init__(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(base_url="https://example.test")

    @resumable
    async def run(self, n: int) -> int:
        return n


class Rebuilt:
    """Holds a socket, but pickles without it and opens a new one when
    loaded: the fix the CheckpointError suggests."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.conn = socket.socket()

    def __getstate__(self) -> dict[str, Any]:
        return {"host": self.host}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.host = state["host"]
        self.conn = socket.socket()

    def close(self) -> None:
        self.conn.close()

    @resumable
    async def run(self, n: int) -> str:
        async for _ in aiter_checkpointed(range(n)):
            RUNS.append("rebuilt")
        return f"{self.host}:{n}:{type(self.conn).__name__}"


class ClassMethodAbove:
    """@classmethod above @resumable: refused when used (a class body cannot
    tell; Python 3.11 and 3.12 bind it through the decorator, 3.13 not)."""

    @classmethod
    @resumable
    async def run(cls, x: int) -> int:
        return x
