"""The carry audit: at each checkpoint, prove the carried set was enough.

Turned on by `configure(audit_carry=True)` or `RESUMABLE_AUDIT_CARRY=1` (the
testing helpers and the project's own suite turn it on). At every checkpoint
of every loop it checks that

* every live local that is neither carried, ignored nor a resource still
  encodes to the same bytes as at the previous checkpoint (or, at the first,
  as when the loop started): if it changed, a resume would bring back its old
  value;
* every list written as deltas equals what its deltas rebuild: if an item
  appended earlier was changed in place, the deltas are stale.

Either failure raises `CarryAuditError` naming the loop, the variable and
what changed. When the audit is off, the loop never creates an `Audit`, so
it costs nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from resumable.errors import CarryAuditError
from resumable.runtime import frames, kinds
from resumable.stores.codec import Codec, UnserializableValue

if TYPE_CHECKING:
    from resumable.runtime.loop import CheckpointedLoop, _AppendTrack

_setting: list[bool | None] = [None]  # configure(audit_carry=...) sets it


def enabled() -> bool:
    configured = _setting[0]
    if configured is not None:
        return configured
    return os.environ.get("RESUMABLE_AUDIT_CARRY", "").lower() in ("1", "true", "yes", "on")


def configure(on: bool | None) -> None:
    _setting[0] = on


def configured() -> bool | None:
    """What configure(audit_carry=...) set; None when it was not called."""
    return _setting[0]


_codec = Codec()
_UNENCODABLE = object()


def _fingerprint(value: Any) -> object:
    if kinds.is_code(value):
        # A closure's pickle holds its cells' contents, which are locals of
        # their own (carried or audited as such).
        return _UNENCODABLE
    try:
        return _codec.dumps(value)
    except UnserializableValue:
        return _UNENCODABLE


class Audit:
    """The audit state of one loop run."""

    def __init__(self, loop: CheckpointedLoop[Any]) -> None:
        self._where = loop._where
        self._prints: dict[str, object] = {}
        # name -> (delta seq, length, what the store's records rebuild)
        self._mirrors: dict[str, tuple[int, int, list[Any]]] = {}

    @classmethod
    def start(cls, loop: CheckpointedLoop[Any]) -> Audit:
        audit = cls(loop)
        values = frames.read_locals(loop._frame, loop._plan.audited)
        for name, value in values.items():
            audit._prints[name] = _fingerprint(value)
        return audit

    def check(
        self,
        loop: CheckpointedLoop[Any],
        carried: dict[str, Any],
        deltas: dict[str, list[Any]],
        tracks: dict[str, _AppendTrack],
    ) -> None:
        plan = loop._plan
        watched = [n for n in plan.audited if n not in plan.names and n not in plan.ignored]
        values = frames.read_locals(loop._frame, watched)
        for name in watched:
            value = values.get(name, _UNENCODABLE)
            now = _UNENCODABLE if value is _UNENCODABLE else _fingerprint(value)
            before = self._prints.get(name, _UNENCODABLE)
            if name not in self._prints:
                self._prints[name] = now
                continue
            if now is _UNENCODABLE or before is _UNENCODABLE:
                continue  # cannot be encoded: nothing to compare
            if now != before:
                raise CarryAuditError(
                    self._where,
                    name,
                    "changed since the previous checkpoint but is not carried",
                )
        for name, value in deltas.items():
            track = tracks[name]
            previous = self._mirrors.get(name)
            if previous is not None and (previous[0], previous[1]) == (track.seq, track.length):
                mirror = previous[2]  # nothing written for it this time
            elif previous is not None and track.seq == previous[0] + 1:
                mirror = previous[2] + _copy(value[previous[1] : track.length])
            else:  # a new base, written whole
                mirror = _copy(value[: track.length])
            self._mirrors[name] = (track.seq, track.length, mirror)
            if _fingerprint(mirror) != _fingerprint(value):
                raise CarryAuditError(
                    self._where,
                    name,
                    "no longer equals what its delta records rebuild (an item appended "
                    "earlier was changed in place)",
                )

    def __repr__(self) -> str:
        return f"<Audit {self._where}>"


def _copy(items: list[Any]) -> list[Any]:
    try:
        copied: list[Any] = _codec.loads(_codec.dumps(list(items)))
    except (UnserializableValue, Exception):
        return list(items)
    return copied
