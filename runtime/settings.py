"""What an execution runs with: its store, codec, lease time and policy on
code changes. Apart from the engine, so that reading a store (`resumable
list`, `status`) does not load the machinery that runs executions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from resumable.stores.base import Store
    from resumable.stores.codec import Codec

__all__ = [
    "ON_CODE_CHANGE",
    "RENEWALS_PER_LEASE",
    "OnCodeChange",
    "Settings",
    "check_on_code_change",
]

# A running execution's lease is renewed this many times per time to live
# (every ttl/3): viewers also use it to bound when an unseen death happened.
RENEWALS_PER_LEASE = 3

OnCodeChange = Literal["error", "continue", "restart"]
ON_CODE_CHANGE: tuple[OnCodeChange, ...] = ("error", "continue", "restart")


def check_on_code_change(value: object) -> OnCodeChange:
    """`value` if it is a valid `on_code_change`, else ValueError saying what is."""
    if value not in ON_CODE_CHANGE:
        raise ValueError(f"on_code_change={value!r}: expected one of {', '.join(ON_CODE_CHANGE)}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    store: Store
    codec: Codec
    lease_ttl: float
    on_code_change: OnCodeChange
