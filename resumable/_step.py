"""`@step`: journaled calls, replayed from their recorded outcome."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from resumable.runtime import events, records, references, wire
from resumable.runtime.context import ExecutionContext, current_execution, position
from resumable.runtime.retry import RetriesArg, Retry, as_policy, call_with_policy, check_timeout
from resumable.stores.codec import UnserializableValue

P = ParamSpec("P")
R = TypeVar("R")

KeyFunction = Callable[..., str]


class Step(Generic[P, R]):
    """A journaled async function. Inside an execution its outcome (result or
    final exception) is recorded at its position and replayed on resume;
    outside one it is a plain call with its retries and timeout."""

    @property
    def __resumable_function__(self) -> Callable[..., Any]:
        """The plain function a call runs (for the carry analysis)."""
        return self._function

    def __init__(
        self,
        function: Callable[P, Awaitable[R]],
        *,
        memoize: bool = False,
        key: KeyFunction | None = None,
        retries: RetriesArg = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"@step needs an `async def` function; {function!r} is not one")
        if key is not None and not callable(key):
            raise TypeError(f"@step(key={key!r}): key must be a function of the step's arguments")
        functools.update_wrapper(self, function)
        self._function = function
        self._memoize = memoize
        self._key = key
        self._policy: Retry | None = as_policy(retries, "step")
        self._timeout = check_timeout(timeout, "step")
        self.name = name or function.__qualname__
        self.location = references.location_of(function)

    def options(
        self,
        *,
        memoize: bool | None = None,
        key: KeyFunction | None = None,
        retries: RetriesArg = None,
        timeout: float | None = None,
    ) -> Step[P, R]:
        """The same step with options for this call site. Memoization is on
        when either the step or the call site asks for it."""
        return Step(
            self._function,
            memoize=self._memoize or bool(memoize),
            key=key or self._key,
            retries=retries if retries is not None else self._policy,
            timeout=timeout if timeout is not None else self._timeout,
            name=self.name,
        )

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        context = current_execution()
        if context is None:
            return await self._call(args, kwargs)
        key = context.next_position(f"step {self.name}")
        if self._memoize:
            return await self._memoized(context, args, kwargs)
        recorded = records.read(context, key, wire.STEP, self.name, self.location)
        if recorded is not None:
            events.record(events.StepReplayed, context.execution_id, position=key, step=self.name)
            if wire.ERROR in recorded:
                raise records.load_value(context, recorded[wire.ERROR], key)
            return records.load_value(context, recorded[wire.RESULT], key)  # type: ignore[no-any-return]
        token = position.set(key)
        events.record(events.StepStarted, context.execution_id, position=key, step=self.name)
        began = time.perf_counter()
        try:
            result = await self._call(args, kwargs)
        except Exception as exc:
            await context.write({key: self._header(context, key, error=exc)})
            self._recorded(context, key, began, failed=True)
            raise
        finally:
            position.reset(token)
        await context.write({key: self._header(context, key, result=result)})
        self._recorded(context, key, began, failed=False)
        return result

    def _recorded(self, context: ExecutionContext, key: str, began: float, failed: bool) -> None:
        events.record(
            events.StepRecorded,
            context.execution_id,
            position=key,
            step=self.name,
            seconds=time.perf_counter() - began,
            failed=failed,
        )

    async def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        return await call_with_policy(
            lambda: self._function(*args, **kwargs), self._policy, self._timeout, self._retried
        )

    def _retried(self, attempt: int, error: BaseException) -> None:
        context = current_execution()
        events.record(
            events.StepRetried,
            context.execution_id if context else "-",
            position=position.get(),
            step=self.name,
            attempt=attempt,
            error=type(error).__name__,
        )

    def _header(
        self,
        context: ExecutionContext,
        key: str,
        result: Any = None,
        error: BaseException | None = None,
    ) -> bytes:
        where = f"step {self.name} ({self.location})"
        outcome = records.dump_outcome(context, result, error, where, "result", key)
        return records.seal(context, wire.step_header(self.name, self.location, outcome), key)

    async def _memoized(
        self, context: ExecutionContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        """One call per key per execution: concurrent callers share the
        in-flight call (stampede protection), which runs as a task of its own
        so that no single caller's cancellation cancels it for the others.
        The outcome is journaled by key, so a resumed execution does not call
        again either."""
        memo_key = wire.memo_key(self.name, self._memo_key(context, args, kwargs))
        shared = context.memo.get(memo_key)
        if shared is None:
            loop = asyncio.get_running_loop()
            recorded = context.records.get(memo_key)
            if recorded is not None:
                shared = loop.create_future()
                value, error = records.load_outcome(context, recorded, memo_key)
                if error is not None:
                    shared.set_exception(error)
                else:
                    shared.set_result(value)
            else:
                shared = loop.create_task(self._fill(context, memo_key, args, kwargs))
            context.memo[memo_key] = shared
        return await asyncio.shield(shared)

    async def _fill(
        self,
        context: ExecutionContext,
        memo_key: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        where = f"step {self.name} ({self.location})"
        position.set(memo_key)  # this task's own context
        events.record(events.StepStarted, context.execution_id, position=memo_key, step=self.name)
        try:
            result = await self._call(args, kwargs)
        except Exception as exc:
            await context.write_grouped(
                {memo_key: records.dump_outcome(context, None, exc, where, "result", memo_key)}
            )
            raise
        await context.write_grouped(
            {memo_key: records.dump_outcome(context, result, None, where, "result", memo_key)}
        )
        return result

    def _memo_key(
        self, context: ExecutionContext, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str:
        if self._key is not None:
            key = self._key(*args, **kwargs)
            if not isinstance(key, str):
                raise TypeError(f"step {self.name}: key= returned {key!r}, expected a str")
            return key
        try:
            blob = context.codec.dumps((args, sorted(kwargs.items())))
        except UnserializableValue as exc:
            raise TypeError(
                f"step {self.name}: cannot derive a memoization key from its arguments "
                f"({exc.reason}); pass key=lambda *args, **kwargs: ... returning a str"
            ) from None
        return hashlib.sha256(blob).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"<step {self.name}>"


@overload
def step(function: Callable[P, Awaitable[R]], /) -> Step[P, R]: ...


@overload
def step(
    *,
    memoize: bool = False,
    key: KeyFunction | None = None,
    retries: RetriesArg = None,
    timeout: float | None = None,
    name: str | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Step[P, R]]: ...


def step(
    function: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    memoize: bool = False,
    key: KeyFunction | None = None,
    retries: RetriesArg = None,
    timeout: float | None = None,
    name: str | None = None,
) -> Step[P, R] | Callable[[Callable[P, Awaitable[R]]], Step[P, R]]:
    """Journal an async function's outcome inside executions.

    `memoize=True`: calls with the same key (default: a digest of the
    arguments; or `key=fn(*args, **kwargs) -> str`) share one result within an
    execution, and concurrent calls share one in-flight call. The cache
    belongs to the execution, never to the process.
    """

    def wrap(fn: Callable[P, Awaitable[R]]) -> Step[P, R]:
        return Step(fn, memoize=memoize, key=key, retries=retries, timeout=timeout, name=name)

    return wrap(function) if function is not None else wrap
