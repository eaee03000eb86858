"""`@resumable`: turn an `async def` into durable executions."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, ParamSpec, TypeVar, overload

from resumable import _config
from resumable.runtime import engine, fingerprint, references

if TYPE_CHECKING:
    from resumable._api import ExecutionStatus
    from resumable.stores.base import Store

P = ParamSpec("P")
R = TypeVar("R")


class Execution(Generic[R]):
    """A handle on a started execution: `.id`, `await .result()`,
    `await .status()`, `await .cancel()`."""

    def __init__(self, execution_id: str, task: asyncio.Future[R], store: Store) -> None:
        self.id = execution_id
        self._task = task
        self._store = store

    async def result(self) -> R:
        """Wait for the execution to end; its result, or its exception raised."""
        return await asyncio.shield(self._task)

    async def status(self) -> ExecutionStatus:
        from resumable._api import status

        return await status(self.id, store=self._store)

    async def cancel(self) -> None:
        """Cancel the run at its next await and wait until it stopped;
        checkpoints are kept and `resume` continues it."""
        from resumable._api import cancel

        if not self._task.done():
            await cancel(self.id, store=self._store)

    def __repr__(self) -> str:
        return f"<Execution {self.id}>"


class _Configured(Generic[P, R]):
    """A resumable function with per-call options; same interface."""

    def __init__(
        self,
        function: ResumableFunction[P, R],
        execution_id: str | None,
        store: Store | str | None,
        on_code_change: engine.OnCodeChange,
    ) -> None:
        self._function = function
        self._execution_id = execution_id
        self._store = store
        self._on_code_change = on_code_change
        if on_code_change not in engine.ON_CODE_CHANGE:
            raise ValueError(
                f"on_code_change={on_code_change!r}: expected one of "
                f"{', '.join(engine.ON_CODE_CHANGE)}"
            )

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        execution = await self.start(*args, **kwargs)
        # Not shielded: cancelling the caller cancels the run, as with any await.
        return await execution._task

    async def start(self, *args: P.args, **kwargs: P.kwargs) -> Execution[R]:
        settings = _config.settings(self._store, self._on_code_change)
        target = self._function.target
        prepared = await engine.prepare_new(target, args, kwargs, self._execution_id, settings)
        if isinstance(prepared, engine.Finished):
            # Completed already (the id is an idempotency key): nothing runs.
            done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            done.set_result(prepared.result)
            return Execution(prepared.execution_id, done, settings.store)
        run_task: asyncio.Task[R] = asyncio.get_running_loop().create_task(
            engine.run(prepared, settings)
        )
        return Execution(prepared.record.id, run_task, settings.store)


class ResumableFunction(Generic[P, R]):
    """What `@resumable` returns. Calling it starts an execution and returns
    its result; `.start()` returns an `Execution`; `.options()` configures."""

    def __init__(
        self,
        function: Callable[P, Awaitable[R]],
        *,
        store: Store | str | None = None,
        name: str | None = None,
        version: str | None = None,
        on_code_change: engine.OnCodeChange = "error",
    ) -> None:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(
                f"@resumable needs an `async def` function; {function.__qualname__} is not one"
            )
        functools.update_wrapper(self, function)
        code = function.__code__
        self.target = engine.Target(
            function=function,
            reference=references.reference_of(function),
            name=name or function.__qualname__,
            location=f"{code.co_filename}:{code.co_firstlineno}",
            fingerprint=fingerprint.fingerprint(function, version),
        )
        engine.defined[self.target.reference] = self.target
        self._defaults = _Configured(self, None, store, on_code_change)
        self._store = store
        self._on_code_change = on_code_change

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._defaults(*args, **kwargs)

    async def start(self, *args: P.args, **kwargs: P.kwargs) -> Execution[R]:
        return await self._defaults.start(*args, **kwargs)

    def options(
        self,
        *,
        execution_id: str | None = None,
        store: Store | str | None = None,
        on_code_change: engine.OnCodeChange | None = None,
    ) -> _Configured[P, R]:
        if execution_id is not None and (not isinstance(execution_id, str) or not execution_id):
            raise ValueError(f"options(execution_id={execution_id!r}): must be a non-empty str")
        return _Configured(
            self,
            execution_id,
            store if store is not None else self._store,
            on_code_change or self._on_code_change,
        )

    def __repr__(self) -> str:
        return f"<resumable {self.target.reference}>"


@overload
def resumable(function: Callable[P, Awaitable[R]], /) -> ResumableFunction[P, R]: ...


@overload
def resumable(
    *,
    store: Store | str | None = None,
    name: str | None = None,
    version: str | None = None,
    on_code_change: engine.OnCodeChange = "error",
) -> Callable[[Callable[P, Awaitable[R]]], ResumableFunction[P, R]]: ...


def resumable(
    function: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    store: Store | str | None = None,
    name: str | None = None,
    version: str | None = None,
    on_code_change: engine.OnCodeChange = "error",
) -> ResumableFunction[P, R] | Callable[[Callable[P, Awaitable[R]]], ResumableFunction[P, R]]:
    """Make an `async def` durable: its checkpointed loops survive crashes and
    `resume(execution_id)` continues it in any process."""

    def wrap(fn: Callable[P, Awaitable[R]]) -> ResumableFunction[P, R]:
        return ResumableFunction(
            fn, store=store, name=name, version=version, on_code_change=on_code_change
        )

    if function is not None:
        return wrap(function)
    return wrap
