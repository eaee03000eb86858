"""`@resumable`: turn an `async def` into durable executions.

On a method, `obj.run` is a `BoundResumable` (the decorator is a
descriptor, like a function): `self` becomes the first stored argument, so
`resume(id)` rebuilds it from the store in any process. Called inside an
execution, a @resumable function starts a child execution (see
`engine.start_child`) instead of an unrelated one.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import sys
import types
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from resumable import _config
from resumable.runtime import engine, fingerprint, ids, references
from resumable.runtime.context import current_execution
from resumable.runtime.registry import REGISTRY
from resumable.runtime.settings import OnCodeChange, check_on_code_change

if TYPE_CHECKING:
    from resumable._executions import ExecutionStatus
    from resumable.stores.base import Store

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
S = TypeVar("S")


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
        from resumable._executions import status

        return await status(self.id, store=self._store)

    async def cancel(self) -> None:
        """Cancel the run at its next await and wait until it stopped;
        checkpoints are kept and `resume` continues it."""
        from resumable._executions import cancel

        if not self._task.done():
            await cancel(self.id, store=self._store)

    def __repr__(self) -> str:
        return f"<Execution {self.id}>"


class _Configured(Generic[P, R]):
    """A resumable function with per-call options; same interface.

    `bound` holds the `self` of a method called through its instance: it is
    passed, and stored, as the first argument.
    """

    @property
    def __resumable_function__(self) -> Callable[..., Any]:
        """The plain function a call runs (for the carry analysis)."""
        function = self._function.target.function
        return functools.partial(function, *self._bound) if self._bound else function

    def __init__(
        self,
        function: ResumableFunction[..., R],
        execution_id: str | None,
        store: Store | str | None,
        on_code_change: OnCodeChange,
        bound: tuple[object, ...] = (),
    ) -> None:
        self._function = function
        self._execution_id = execution_id
        self._store = store
        self._on_code_change = on_code_change
        self._bound = bound
        check_on_code_change(on_code_change)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        execution = await self.start(*args, **kwargs)
        # Not shielded: cancelling the caller cancels the run, as with any await.
        return await execution._task

    async def start(self, *args: P.args, **kwargs: P.kwargs) -> Execution[R]:
        target = self._function.target
        call_args = (*self._bound, *args)
        parent = current_execution()
        if parent is not None:
            # Positions are taken in program order: nothing may await before.
            self._check_store(parent.store, parent.execution_id)
            own_mode = self._on_code_change if self._on_code_change != "error" else None
            child = await engine.start_child(
                parent,
                target,
                call_args,
                kwargs,
                self._execution_id,
                own_mode,
                bound=bool(self._bound),
            )
            return Execution(child.execution_id, child.outcome, child.store)
        settings = _config.settings(self._store, self._on_code_change)
        # A given id is an idempotency key: if it completed already, nothing runs.
        started = await engine.start_or_resume(
            settings,
            execution_id=self._execution_id,
            call=engine.Call(target, call_args, kwargs, bound=bool(self._bound)),
        )
        return Execution(started.execution_id, started.outcome, settings.store)

    def _check_store(self, parent_store: Store, parent_id: str) -> None:
        """A child execution lives in its parent's store (the parent's replay
        looks for it there): refuse a configured store that is another one."""
        if self._store is None:
            return
        chosen = _config.resolve_store(self._store)
        if chosen is parent_store or (
            chosen.url == parent_store.url and not chosen.url.startswith("memory:")
        ):
            return
        name = self._function.target.name
        raise ValueError(
            f"{name} is configured with store={chosen.url}, but it is called inside "
            f"execution {parent_id!r}, whose store is {parent_store.url}: a child execution "
            "lives in its parent's store, where the parent's replay finds it. HINT: drop "
            f"store= from {name}'s @resumable(...) or .options(...)"
        )


class ResumableFunction(Generic[P, R]):
    """What `@resumable` returns. Calling it starts an execution and returns
    its result; `.start()` returns an `Execution`; `.options()` configures."""

    @property
    def __resumable_function__(self) -> Callable[..., Any]:
        """The plain function a call runs (for the carry analysis)."""
        return self.target.function

    def __init__(
        self,
        function: Callable[P, Awaitable[R]],
        *,
        store: Store | str | None = None,
        name: str | None = None,
        version: str | None = None,
        on_code_change: OnCodeChange = "error",
        keep_checkpoints: bool = False,
    ) -> None:
        if isinstance(function, staticmethod | classmethod):
            raise TypeError(_wrapper_order_message(function, function.__func__))
        if not inspect.iscoroutinefunction(function):
            raise TypeError(
                f"@resumable needs an `async def` function; {function.__qualname__} is not one"
            )
        functools.update_wrapper(self, function)
        self.target = engine.Target(
            function=function,
            reference=references.reference_of(function),
            name=name or function.__qualname__,
            location=references.location_of(function),
            fingerprint=fingerprint.fingerprint(function, version),
            keep_checkpoints=bool(keep_checkpoints),
        )
        REGISTRY.defined[self.target.reference] = self.target
        self._defaults: _Configured[P, R] = _Configured(self, None, store, on_code_change)
        self._store = store
        self._on_code_change = on_code_change
        self._classmethod_checked = False

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        self._refuse_classmethod()
        return await self._defaults(*args, **kwargs)

    async def start(self, *args: P.args, **kwargs: P.kwargs) -> Execution[R]:
        self._refuse_classmethod()
        return await self._defaults.start(*args, **kwargs)

    def options(
        self,
        *,
        execution_id: str | None = None,
        store: Store | str | None = None,
        on_code_change: OnCodeChange | None = None,
    ) -> _Configured[P, R]:
        self._refuse_classmethod()
        return self._configure(execution_id, store, on_code_change, ())

    def _configure(
        self,
        execution_id: str | None,
        store: Store | str | None,
        on_code_change: OnCodeChange | None,
        bound: tuple[object, ...],
    ) -> _Configured[Any, R]:
        if execution_id is not None:
            ids.check(execution_id, "options(execution_id=...)", new=True)
        return _Configured(
            self,
            execution_id,
            store if store is not None else self._store,
            on_code_change or self._on_code_change,
            bound,
        )

    # A descriptor, like a plain function: `obj.run` binds `obj`.
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self: ResumableFunction[Concatenate[S, Q], R], instance: S, owner: type[Any] | None = None
    ) -> BoundResumable[Q, R]: ...

    def __get__(
        self, instance: object, owner: type[Any] | None = None
    ) -> ResumableFunction[P, R] | BoundResumable[Any, R]:
        if instance is None:
            return self  # Class.run: the function itself (what resume() resolves)
        if instance is owner:
            # Only a classmethod over us calls __get__(cls, cls) (Python 3.11
            # and 3.12 chain it; 3.13 makes a plain method object instead).
            # Hand out the function: using it is refused, as on 3.13.
            return self
        return BoundResumable(self, instance)

    def _refuse_classmethod(self) -> None:
        """On Python 3.13+, `@classmethod` over `@resumable` makes `Cls.run` a
        plain method object whose `.start`/`.options` cannot bind the class:
        refuse it on every use, on every version, rather than half work."""
        if self._classmethod_checked:
            return
        wrapper = _class_attribute(self.target.function)
        if isinstance(wrapper, classmethod) and wrapper.__func__ is self:
            raise TypeError(_wrapper_order_message(classmethod, self))
        self._classmethod_checked = True

    def __repr__(self) -> str:
        return f"<resumable {self.target.reference}>"


class BoundResumable(Generic[P, R]):
    """A @resumable method bound to its object (`obj.run`), with the
    function's interface: calling it starts an execution, `.start()` returns
    an `Execution`, `.options()` configures. The object is stored as the
    first argument, so it must be picklable."""

    __slots__ = ("__func__", "__self__")

    def __init__(self, function: ResumableFunction[..., R], instance: object) -> None:
        self.__func__ = function
        self.__self__ = instance

    @property
    def __resumable_function__(self) -> Callable[..., Any]:
        """The plain function a call runs (for the carry analysis)."""
        return types.MethodType(self.__func__.target.function, self.__self__)

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self.options()(*args, **kwargs)

    async def start(self, *args: P.args, **kwargs: P.kwargs) -> Execution[R]:
        return await self.options().start(*args, **kwargs)

    def options(
        self,
        *,
        execution_id: str | None = None,
        store: Store | str | None = None,
        on_code_change: OnCodeChange | None = None,
    ) -> _Configured[P, R]:
        return self.__func__._configure(execution_id, store, on_code_change, (self.__self__,))

    def __repr__(self) -> str:
        return f"<bound resumable {self.__func__.target.reference} of {self.__self__!r}>"


def _class_attribute(function: Callable[..., Any]) -> object:
    """What the class body that defined `function` holds under its name
    (None for a module-level function, or a class inside a function)."""
    owner_path, _, name = function.__qualname__.rpartition(".")
    if not owner_path or "<locals>" in owner_path.split("."):
        return None
    owner: object = sys.modules.get(function.__module__)
    for part in owner_path.split("."):
        owner = getattr(owner, part, None)
    return vars(owner).get(name) if isinstance(owner, type) else None


def _wrapper_order_message(wrapper: object, function: object) -> str:
    """Why @resumable refuses to sit over or under `wrapper` (a staticmethod
    or classmethod, or either type) around `function`, and what to write."""
    name = getattr(function, "__qualname__", repr(function))
    if wrapper is staticmethod or isinstance(wrapper, staticmethod):
        return (
            f"@resumable is applied to a staticmethod ({name}): write @staticmethod above "
            "@resumable, which then works like a module-level function"
        )
    return (
        f"@resumable does not support class methods ({name}): a class method would store "
        "its class with its arguments, and on Python 3.13+ @classmethod can no longer bind "
        "another decorator, so .start() and .options() could not work. HINT: use a plain "
        "method (its object is stored with the arguments), a @staticmethod above @resumable, "
        "or a module-level @resumable function that takes what it needs from the class"
    )


@overload
def resumable(function: Callable[P, Awaitable[R]], /) -> ResumableFunction[P, R]: ...


@overload
def resumable(
    *,
    store: Store | str | None = None,
    name: str | None = None,
    version: str | None = None,
    on_code_change: OnCodeChange = "error",
    keep_checkpoints: bool = False,
) -> Callable[[Callable[P, Awaitable[R]]], ResumableFunction[P, R]]: ...


def resumable(
    function: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    store: Store | str | None = None,
    name: str | None = None,
    version: str | None = None,
    on_code_change: OnCodeChange = "error",
    keep_checkpoints: bool = False,
) -> ResumableFunction[P, R] | Callable[[Callable[P, Awaitable[R]]], ResumableFunction[P, R]]:
    """Make an `async def` durable: its checkpointed loops survive crashes and
    `resume(execution_id)` continues it in any process. On completion its
    checkpoint records are compacted into a summary (progress totals, the
    steps that ran) in the transaction that stores the result;
    `keep_checkpoints=True` keeps them all, for debugging."""

    def wrap(fn: Callable[P, Awaitable[R]]) -> ResumableFunction[P, R]:
        return ResumableFunction(
            fn,
            store=store,
            name=name,
            version=version,
            on_code_change=on_code_change,
            keep_checkpoints=keep_checkpoints,
        )

    if function is not None:
        return wrap(function)
    return wrap
