"""HTTP loops with real `httpx.AsyncClient`s (answered by `corpus._fakeapi`).

A client is a resource (README, "What gets carried"): never pickled, rebuilt by the replayed
code before the loop. Its state (a connection pool) is not part of any
result, so leaving it out is safe and these programs must resume exactly.
"""

from __future__ import annotations

import httpx
import tenacity

from corpus import exact
from corpus._fakeapi import BASE_URL, Flaky, transport
from corpus._log import record
from resumable import aiter_checkpointed, resumable


@exact(redis=True)
@resumable
async def fetch_catalogue(log: str) -> dict[str, object]:
    """A client made before the loop, one GET per item, a list and a sum."""
    client = httpx.AsyncClient(base_url=BASE_URL, transport=transport())
    skus = []
    inventory_cents = 0
    async for i in aiter_checkpointed(range(12)):
        resp = await client.get(f"/items/{i}")
        resp.raise_for_status()
        item = resp.json()
        record(log, f"item:{i}")
        skus.append(item["sku"])
        inventory_cents += item["price_cents"] * item["stock"]
    await client.aclose()
    return {"skus": skus, "inventory_cents": inventory_cents}


@exact(
    why="The client is created lazily by the body and rebound from None: it is a "
    "resource, so it is not carried; on resume the replayed code sets it to None "
    "again and the body creates a new one. Refusing it would refuse a common idiom."
)
@resumable
async def lazy_client(log: str) -> dict[str, int]:
    """`if client is None: client = httpx.AsyncClient(...)` inside the loop."""
    client: httpx.AsyncClient | None = None
    stock_by_supplier: dict[str, int] = {}
    async for i in aiter_checkpointed(range(10)):
        if client is None:
            client = httpx.AsyncClient(base_url=BASE_URL, transport=transport())
        item = (await client.get(f"/items/{i}")).json()
        record(log, f"item:{i}")
        supplier = item["supplier"]
        stock_by_supplier[supplier] = stock_by_supplier.get(supplier, 0) + item["stock"]
    if client is not None:
        await client.aclose()
    return stock_by_supplier


@exact()
@resumable
async def export_pages(log: str) -> dict[str, object]:
    """Cursor pagination inside `async with client`: the cursor is carried."""
    async with httpx.AsyncClient(base_url=BASE_URL, transport=transport()) as client:
        cursor: str | None = None
        kept: list[str] = []
        async for page_number in aiter_checkpointed(range(6)):
            params = {} if cursor is None else {"cursor": cursor}
            data = (await client.get("/rows", params=params)).json()
            kept.extend(row["sku"] for row in data["rows"] if row["stock"] > 5)
            cursor = data["next"]
            record(log, f"page:{page_number}")
    return {"kept": kept, "cursor": cursor}


@tenacity.retry(
    retry=tenacity.retry_if_exception_type(httpx.HTTPStatusError),
    stop=tenacity.stop_after_attempt(3),
    wait=tenacity.wait_none(),
    reraise=True,
)
async def get_item(client: httpx.AsyncClient, i: int) -> dict[str, object]:
    resp = await client.get(f"/items/{i}")
    resp.raise_for_status()
    data: dict[str, object] = resp.json()
    return data


@exact()
@resumable
async def prices_with_retries(log: str) -> dict[str, object]:
    """A tenacity-retried call in the body, against an API that answers 503
    to the first attempt at every third item."""
    flaky = Flaky()
    client = httpx.AsyncClient(base_url=BASE_URL, transport=httpx.MockTransport(flaky))
    prices: dict[str, object] = {}
    async for i in aiter_checkpointed(range(10)):
        item = await get_item(client, i)
        record(log, f"item:{i}")
        prices[str(item["sku"])] = item["price_cents"]
    await client.aclose()
    return prices


EVENTS = [{"id": n, "kind": ("view", "click", "buy")[n % 3], "user": f"u{n % 4}"} for n in range(9)]


@exact()
@resumable
async def push_events(log: str) -> dict[str, object]:
    """POSTs JSON events; the accepted ids and the bytes sent accumulate."""
    client = httpx.AsyncClient(base_url=BASE_URL, transport=transport())
    accepted: list[int] = []
    sent_bytes = 0
    async for event in aiter_checkpointed(EVENTS):
        resp = await client.post("/events", json=event)
        body = resp.json()
        record(log, f"event:{event['id']}")
        accepted.append(body["accepted"])
        sent_bytes += body["size"]
    await client.aclose()
    return {"accepted": accepted, "sent_bytes": sent_bytes}


QUERIES = ["resumable", "asyncio", "sqlite", "valkey", "bytecode", "pickle", "httpx"]


@exact(
    why="`resp` is a temporary, assigned before it is read in every iteration; a "
    "lambda captures it, which makes it a cell. Cells are not live at the loop "
    "head for that reason alone: nothing from an earlier iteration is read."
)
@resumable
async def best_hits(log: str) -> dict[str, object]:
    """The best search hit per query, chosen with a key lambda that reads the
    response (a temporary captured by a lambda)."""
    client = httpx.AsyncClient(base_url=BASE_URL, transport=transport())
    best: dict[str, str] = {}
    async for query in aiter_checkpointed(QUERIES):
        resp = (await client.get("/search", params={"q": query})).json()
        hits = resp["hits"]
        top = max(hits, key=lambda h: (h["score"], -len(resp["hits"])))
        record(log, f"search:{query}")
        best[query] = top["url"]
    await client.aclose()
    return best
