"""The HTTP server the corpus talks to: an `httpx.MockTransport` handler.

A stand-in for a remote API, nothing of the library is faked: the programs
use real `httpx.AsyncClient`s (and a real `openai.AsyncOpenAI`, see
`corpus.llm`) whose requests this handler answers. Every answer is a pure
function of the request, so a resumed process sees the same API.
"""

from __future__ import annotations

import hashlib
import json

import httpx

BASE_URL = "http://api.corpus.test"

_SUPPLIERS = ("acme", "globex", "initech", "umbrella")
_REGIONS = ("eu", "us", "apac")


def _digits(text: str) -> int:
    """A stable number derived from `text` (hash() differs per process)."""
    return int(hashlib.blake2b(text.encode(), digest_size=4).hexdigest(), 16)


def item(i: int) -> dict[str, object]:
    return {
        "id": i,
        "sku": f"SKU-{i:04d}",
        "supplier": _SUPPLIERS[_digits(f"supplier{i}") % len(_SUPPLIERS)],
        "region": _REGIONS[i % len(_REGIONS)],
        "price_cents": 199 + _digits(f"price{i}") % 5000,
        "stock": _digits(f"stock{i}") % 40,
    }


def search(query: str) -> dict[str, object]:
    n = 1 + _digits(query) % 4
    hits = [
        {"url": f"https://{query}.example/{k}", "score": (_digits(f"{query}{k}") % 1000) / 1000}
        for k in range(n)
    ]
    return {"query": query, "hits": hits}


def page(cursor: str | None) -> dict[str, object]:
    number = 0 if cursor is None else int(cursor.removeprefix("c"))
    rows = [item(number * 5 + k) for k in range(5)]
    return {"rows": rows, "next": f"c{number + 1}"}


def handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.startswith("/items/"):
        return httpx.Response(200, json=item(int(path.removeprefix("/items/"))))
    if path == "/search":
        return httpx.Response(200, json=search(request.url.params["q"]))
    if path == "/rows":
        return httpx.Response(200, json=page(request.url.params.get("cursor")))
    if path == "/events":
        body = json.loads(request.content)
        return httpx.Response(201, json={"accepted": body["id"], "size": len(request.content)})
    return httpx.Response(404, json={"error": f"no route {path}"})


def transport() -> httpx.MockTransport:
    return httpx.MockTransport(handler)


class Flaky:
    """A handler that fails the first attempt at every third item with 503,
    as rate-limited APIs do; the state is per transport (per process), so a
    resumed process sees the same first failures."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.attempts[path] = self.attempts.get(path, 0) + 1
        number = int(path.rsplit("/", 1)[1]) if path.startswith("/items/") else 1
        if number % 3 == 0 and self.attempts[path] == 1:
            return httpx.Response(503, json={"error": "try again"})
        return handler(request)
