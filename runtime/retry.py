"""Retry policies for items and steps, on top of stamina.

stamina (exponential backoff with jitter, async-native, instrumented) does
the waiting and counting; this module adds the policy object users pass
around, the per-attempt timeout, and a hook so retries show up in our logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import stamina
import structlog

T = TypeVar("T")
log = structlog.get_logger("resumable")


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
        return await attempt()
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
