"""`amap` and `agather`: checkpointed concurrency."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import Any, Generic, TypeVar

from resumable.runtime import references
from resumable.runtime.fanout import Fanout, Outcome, Plan
from resumable.runtime.retry import RetriesArg, as_policy, check_timeout

T = TypeVar("T")
R = TypeVar("R")


async def _aiterate(iterable: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(iterable, AsyncIterable):
        async for item in iterable:
            yield item
    else:
        for item in iterable:
            yield item


def _check_concurrency(concurrency: int | None, owner: str) -> None:
    if concurrency is not None and (
        not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
    ):
        raise ValueError(f"{owner}(concurrency={concurrency!r}): must be an int >= 1")


class AMap(Generic[R]):
    """What `amap` returns: await it for the list of results, or iterate it
    with `async for` to stream them."""

    def __init__(self, fanout: Fanout) -> None:
        self._fanout = fanout
        self._used = False

    def _outcomes(self) -> AsyncIterator[Outcome]:
        if self._used:
            raise RuntimeError("an amap() result can be awaited or iterated only once")
        self._used = True
        return self._fanout.stream()

    async def _collect(self) -> list[R]:
        # With return_exceptions=True an item's result may be its exception.
        results: list[Any] = [
            outcome.error if outcome.error is not None else outcome.value
            async for outcome in self._outcomes()
        ]
        return results

    def __await__(self) -> Generator[Any, None, list[R]]:
        return self._collect().__await__()

    async def __aiter__(self) -> AsyncIterator[R]:
        async for outcome in self._outcomes():
            yield outcome.error if outcome.error is not None else outcome.value  # type: ignore[misc]


def amap(
    fn: Callable[[T], Awaitable[R]],
    iterable: Iterable[T] | AsyncIterable[T],
    *,
    concurrency: int = 16,
    ordered: bool = True,
    retries: RetriesArg = None,
    timeout: float | None = None,
    return_exceptions: bool = False,
) -> AMap[R]:
    """Apply `fn` to every item with at most `concurrency` calls in flight,
    checkpointing each finished item's result.

    `await amap(...)` returns the results in input order; `async for r in
    amap(...)` streams them (as they complete with `ordered=False`). Input is
    pulled only as capacity frees up. On resume only unfinished items run.
    `retries` (a `Retry` or a number of attempts) and `timeout` (seconds, per
    attempt) apply per item. The first item that finally fails cancels the
    others and raises; finished items stay checkpointed. With
    `return_exceptions=True` a failure is recorded as that item's result.
    """
    if not callable(fn):
        raise TypeError(f"amap(fn={fn!r}): fn must be an async callable")
    _check_concurrency(concurrency, "amap")
    plan = Plan(
        kind="map",
        site=f"amap({getattr(fn, '__qualname__', type(fn).__qualname__)})",
        location=references.caller_location(),
        concurrency=concurrency,
        ordered=ordered,
        policy=as_policy(retries, "amap"),
        timeout=check_timeout(timeout, "amap"),
        return_exceptions=return_exceptions,
        total=len(iterable) if hasattr(iterable, "__len__") else None,  # type: ignore[arg-type]
    )
    return AMap(Fanout(plan, fn, _aiterate(iterable)))


def _close_unstarted(item: object) -> None:
    if inspect.iscoroutine(item):
        item.close()


async def _start_awaitable(item: object) -> Any:
    awaitable = item() if callable(item) and not inspect.isawaitable(item) else item
    if not inspect.isawaitable(awaitable):
        raise TypeError(f"agather: {item!r} did not give an awaitable")
    return await awaitable


async def agather(
    *awaitables: Awaitable[Any] | Callable[[], Awaitable[Any]],
    concurrency: int | None = None,
    return_exceptions: bool = False,
) -> list[Any]:
    """Like `asyncio.gather`, with each finished awaitable's result
    checkpointed by position. Pass coroutines (not yet started) or
    zero-argument callables returning awaitables; on resume, recorded
    positions are closed without running and only the missing ones start.
    """
    for position, item in enumerate(awaitables):
        if isinstance(item, asyncio.Future):  # Tasks are Futures
            for other in awaitables:
                _close_unstarted(other)
            raise TypeError(
                f"agather() argument {position} is a {type(item).__name__}: it is already "
                "running, so it could not be skipped on resume. Pass the coroutine itself "
                "(agather(fetch(a), fetch(b))) or a zero-argument callable."
            )
        candidate: object = item  # callers may pass anything at run time
        if not (inspect.isawaitable(candidate) or callable(candidate)):
            for other in awaitables:
                _close_unstarted(other)
            raise TypeError(f"agather() argument {position} is not awaitable: {item!r}")
    _check_concurrency(concurrency, "agather")
    plan = Plan(
        kind="gather",
        site="agather",
        location=references.caller_location(),
        concurrency=concurrency or max(1, len(awaitables)),
        ordered=True,
        policy=None,
        timeout=None,
        return_exceptions=return_exceptions,
        total=len(awaitables),
        discard=_close_unstarted,
    )
    fanout = Fanout(plan, _start_awaitable, _aiterate(awaitables))
    return [o.error if o.error is not None else o.value async for o in fanout.stream()]
