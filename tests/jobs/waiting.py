"""A run that waits on an in-process gate, so a test can race it."""

from __future__ import annotations

import asyncio

from resumable import resumable

GATES: dict[str, asyncio.Event] = {}


@resumable
async def wait_for_gate(name: str) -> str:
    await GATES[name].wait()
    return "opened"
