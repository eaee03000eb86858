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
from resumable.runtime import deltas, frames, kinds
from resumable.stores.codec import Codec, UnserializableValue

if TYPE_CHECKING:
    from resumable.runtime.deltas import Track
    from resumable.runtime.loop import CheckpointedLoop

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
        # The delta records this loop wrote, as the store holds them.
        self._records: dict[str, bytes] = {}

    @classmethod
    def start(cls, loop: CheckpointedLoop[Any]) -> Audit:
        audit = cls(loop)
        if loop._context is not None:  # what earlier runs left in the store
            audit._records = dict(loop._context.records)
        values = frames.read_locals(loop._frame, loop._plan.audited)
        for name, value in values.items():
            audit._prints[name] = _fingerprint(value)
        return audit

    def check(
        self,
        loop: CheckpointedLoop[Any],
        delta_values: dict[str, Any],
        tracks: dict[str, Track],
        puts: dict[str, bytes],
        deletes: list[str],
    ) -> None:
        """Before a checkpoint is written: every live local left out is
        unchanged, and every value written as deltas equals what its
        records (these puts and deletes included) rebuild."""
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
        for key in deletes:
            self._records.pop(key, None)
        self._records.update(puts)
        context = loop._context
        assert context is not None  # deltas are written inside an execution
        for name, value in delta_values.items():
            track = tracks[name]
            rebuilt, _ = deltas.rebuild(
                self._records,
                execution_id=context.execution_id,
                key=loop._key,
                name=name,
                described=track.wire(),
                # The records this process just wrote, held here: trusted.
                load=lambda data, key: context.codec.loads(
                    data,
                    execution_id=context.execution_id,
                    key=key,
                    verified=True,
                ),
            )
            # A set's encoding follows its iteration order, which depends on
            # its insertion history: sets are compared as sets.
            if track.kind == deltas.SET:
                same = rebuilt == value
            else:
                same = _fingerprint(rebuilt) == _fingerprint(value)
            if not same:
                raise CarryAuditError(
                    self._where,
                    name,
                    "no longer equals what its delta records rebuild (an item written "
                    "earlier was changed in place)",
                )

    def __repr__(self) -> str:
        return f"<Audit {self._where}>"
