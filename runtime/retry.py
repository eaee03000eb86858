"""Retry policies for items and steps, on top of stamina.

stamina (exponential backoff with jitter, async-native, instrumented) does
the waiting and counting; this module adds the policy object users pass
around, the per-attempt timeout, and a hook (`on_retry`) through which the
callers log one line per retry, with the exception's type name only.

stamina's own instrumentation would log a second line per retry, with the
exception's repr, i.e. its message, which may hold secrets. Its hooks are
process-wide (`stamina.instrumentation.set_on_retry_hooks`), with no
per-call option, and the application's own stamina retries should keep
them. So the configured hooks are wrapped (`_quiet_inside_ours`): a wrapper
calls its hook unless a context variable says the retry is one of ours. The
application's code that runs inside our attempt (a step's body) resets the
variable, so its own stamina retries are logged as before. The wrapping is
checked before each retrying call, so hooks the application sets later are
wrapped too; `get_on_retry_hooks()` shows the wrappers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import stamina
from stamina.instrumentation import (
    RetryDetails,
    RetryHook,
    get_on_retry_hooks,
    set_on_retry_hooks,
)

T = TypeVar("T")

# True while stamina schedules one of our retries (see the module docstring).
_ours: ContextVar[bool] = ContextVar("resumable_retrying", default=False)


@dataclass(frozen=True, slots=True)
class Retry:
    """How to retry a failing item or step.

    `attempts` counts the first try. Waits grow as
    `wait_initial * wait_exp_base ** (attempt - 1)` plus up to `wait_jitter`
    random seconds, capped at `wait_max`. Only exceptions matching `on` are
    retried; others fail at once. `timeout` caps the whole retry loop
    (seconds, None for no cap).
    """

    attempts: int = 3
    on: type[Exception] | tuple[type[Exception], ...] = Exception
    wait_initial: float = 0.1
    wait_max: float = 5.0
    wait_jitter: float = 1.0
    wait_exp_base: float = 2.0
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError(f"Retry(attempts={self.attempts!r}): must be an int >= 1")
        for name in ("wait_initial", "wait_max", "wait_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"Retry({name}={getattr(self, name)!r}): must be >= 0")
        if self.wait_exp_base < 1:
            raise ValueError(f"Retry(wait_exp_base={self.wait_exp_base!r}): must be >= 1")


RetriesArg = Retry | int | None


def as_policy(retries: RetriesArg, owner: str) -> Retry | None:
    """Accept a Retry, an int (that many attempts with default backoff), or None."""
    if retries is None or isinstance(retries, Retry):
        return retries
    if isinstance(retries, int) and not isinstance(retries, bool):
        return Retry(attempts=retries)
    raise TypeError(f"{owner}(retries={retries!r}): expected a resumable.Retry, an int, or None")


def check_timeout(timeout: float | None, owner: str) -> float | None:
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(f"{owner}(timeout={timeout!r}): must be a number of seconds > 0")
    return timeout


async def call_with_policy(
    call: Callable[[], Awaitable[T]],
    policy: Retry | None,
    attempt_timeout: float | None,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Run `call` with a per-attempt timeout and the retry `policy`."""

    async def attempt() -> T:
        if attempt_timeout is None:
            return await call()
        async with asyncio.timeout(attempt_timeout):
            return await call()

    if policy is None or policy.attempts == 1:
        return await attempt()  # no retry of ours: nothing to tell stamina's hooks

    async def users_attempt() -> T:
        token = _ours.set(False)  # the user's code: its own stamina retries log
        try:
            return await attempt()
        finally:
            _ours.reset(token)

    _quiet_stamina_for_ours()
    token = _ours.set(True)
    try:
        return await _retrying(users_attempt, policy, on_retry)
    finally:
        _ours.reset(token)


async def _retrying(
    attempt: Callable[[], Awaitable[T]],
    policy: Retry,
    on_retry: Callable[[int, BaseException], None] | None,
) -> T:
    number = 0
    async for retry in stamina.retry_context(
        on=policy.on,
        attempts=policy.attempts,
        timeout=policy.timeout,
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
        wait_jitter=policy.wait_jitter,
        wait_exp_base=policy.wait_exp_base,
    ):
        with retry:
            number += 1
            try:
                return await attempt()
            except BaseException as exc:
                if on_retry is not None and number < policy.attempts and isinstance(exc, policy.on):
                    on_retry(number, exc)
                raise
    raise AssertionError("unreachable: stamina re-raises the last failure")  # pragma: no cover


class _QuietInsideOurs:
    """A stamina retry hook that stays silent for our retries (we log them
    ourselves, without the exception's message) and calls `hook` for all
    others."""

    __slots__ = ("hook",)

    def __init__(self, hook: RetryHook) -> None:
        self.hook = hook

    def __call__(self, details: RetryDetails) -> AbstractContextManager[None] | None:
        if _ours.get():
            return None
        return self.hook(details)


def _quiet_stamina_for_ours() -> None:
    hooks = get_on_retry_hooks()
    if not all(isinstance(hook, _QuietInsideOurs) for hook in hooks):
        set_on_retry_hooks(
            [
                hook if isinstance(hook, _QuietInsideOurs) else _QuietInsideOurs(hook)
                for hook in hooks
            ]
        )
