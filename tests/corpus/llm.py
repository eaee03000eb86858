"""Agent loops with a real `openai.AsyncOpenAI` client.

The client's HTTP goes to an `httpx.MockTransport` whose handler builds the
chat-completion responses, so the whole openai stack (request building,
response parsing into pydantic models, usage objects) runs for real. The
client is a resource; the conversation, the token usage and the costs are
state.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import httpx
import openai

from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed, resumable

MODEL = "gpt-4o-mini"


def _words(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def chat_completions(request: httpx.Request) -> httpx.Response:
    """The fake LLM: answers with a deterministic function of the prompt."""
    body = json.loads(request.content)
    messages = body["messages"]
    question = messages[-1]["content"]
    words = question.split()
    answer = f"{len(words)} words; first {words[0].lower()}, last {words[-1].lower()}"
    if "classify" in body.get("metadata", {}).get("task", ""):
        answer = ("positive", "negative", "neutral")[len(question) % 3]
    prompt_tokens = _words(messages) + 3 * len(messages)
    completion_tokens = len(answer.split())
    return httpx.Response(
        200,
        json={
            "id": f"chatcmpl-{len(messages)}-{len(question)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


def make_client() -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="x",
        base_url="http://llm.corpus.test/v1",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(chat_completions)),
    )


@dataclass
class Usage:
    prompt: int = 0
    completion: int = 0
    calls: int = 0


QUESTIONS = [
    "What is a checkpoint in a long running batch job",
    "Why would a process be killed with SIGKILL",
    "How does write ahead logging keep SQLite consistent",
    "What does an idempotency key protect against",
    "When is at least once delivery good enough",
    "Explain a lease with a fencing token",
    "Why are hash orders of strings different per process",
    "What is the cost of pickling a large list",
]


@exact()
@resumable
async def research_agent(log: str) -> dict[str, object]:
    """A conversation grown turn by turn (a list of message dicts sent whole
    every call) and token usage summed into a dataclass."""
    client = make_client()
    usage = Usage()
    messages = [{"role": "system", "content": "You answer in one short line."}]
    async for turn, question in aiter_checkpointed(enumerate(QUESTIONS)):
        messages.append({"role": "user", "content": question})
        resp = await client.chat.completions.create(model=MODEL, messages=messages)
        record(log, f"turn:{turn}")
        assert resp.usage is not None
        usage.prompt += resp.usage.prompt_tokens
        usage.completion += resp.usage.completion_tokens
        usage.calls += 1
        messages.append({"role": "assistant", "content": resp.choices[0].message.content or ""})
    await client.close()
    return {"usage": dataclasses.asdict(usage), "messages": messages}


REVIEWS = [
    "Arrived quickly and works as described",
    "Broke after two days",
    "ok",
    "The battery lasts forever, love it",
    "Would not buy again, support never answered",
    "Fine for the price",
    "Five stars from me and my whole family",
    "meh",
    "It does what it says on the box",
    "Terrible",
]


@exact()
@resumable
async def classify_within_budget(log: str) -> dict[str, object]:
    """Classification calls until a token budget runs out (`break`), with
    the labels counted in a dict and the spend in a float."""
    client = make_client()
    labels: dict[str, str] = {}
    counts = {"positive": 0, "negative": 0, "neutral": 0}
    spent = 0.0
    async for n, review in aiter_checkpointed(enumerate(REVIEWS)):
        resp = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": review}],
            metadata={"task": "classify"},
        )
        record(log, f"review:{n}")
        label = resp.choices[0].message.content or "neutral"
        labels[review] = label
        counts[label] += 1
        assert resp.usage is not None
        spent += resp.usage.total_tokens * 0.15 / 1000
        if spent > 0.01:
            break
    await client.close()
    return {"labels": labels, "counts": counts, "spent": spent}
