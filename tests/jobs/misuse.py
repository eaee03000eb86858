"""Wrong uses of aiter_checkpointed, each of which must fail clearly."""

from __future__ import annotations

from resumable import aiter_checkpointed, resumable


@resumable
async def assigned_first() -> None:
    loop = aiter_checkpointed(range(3))
    async for _ in loop:
        pass


@resumable
async def bad_every() -> None:
    async for _ in aiter_checkpointed(range(3), every=0):
        pass


@resumable
async def bad_carry() -> None:
    total = 0
    async for i in aiter_checkpointed(range(3), carry=("nonexistent",)):
        total += i
