"""Guarantee §3.6: an unserializable carried value fails at its checkpoint,
naming loop, variable and type, and the previous checkpoint stays usable."""

from __future__ import annotations

import uuid

import pytest
from jobs import poison

from resumable import CheckpointError, resume, status


class TestUnserializableCarriedValue:
    """The checkpoint that meets the value raises; nothing is overwritten."""

    async def test_error_names_loop_variable_and_type(self, store):
        poison.POISON["at"] = 3
        poison.RUNS.clear()
        execution_id = uuid.uuid4().hex
        with pytest.raises(CheckpointError) as caught:
            await poison.job.options(execution_id=execution_id, store=store)(6)
        error = caught.value
        assert error.variable == "holder"
        assert error.type_name == "jobs.poison.Opaque"
        assert "poison.py:" in error.where and "job:loop0(i)" in error.where
        assert "pickle" in error.reason
        # Iterations 0..2 were checkpointed; the failed checkpoint wrote nothing.
        record = await status(execution_id, store=store)
        assert record.status == "failed"
        assert "CheckpointError" in (record.error or "")
        assert [(p.done, p.finished) for p in record.progress] == [(3, False)]

        poison.POISON["at"] = -1  # the data no longer produces an unpicklable value
        poison.RUNS.clear()
        assert await resume(execution_id, store=store) == (15, 5)
        assert poison.RUNS == [3, 4, 5]  # resumed from the intact checkpoint
