"""numpy arrays as loop state: item assignment, `+=`, and `np.append` rebinding.

Results go out as lists of Python floats (`tolist()`), so the harness
compares exact values, bit for bit.
"""

from __future__ import annotations

import numpy as np

from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed, resumable


def reading(i: int) -> np.ndarray:
    """Sensor i's three-axis reading (deterministic)."""
    return np.array([np.sin(i), np.cos(i) * 2.0, (i % 5) / 3.0])


@exact()
@resumable
async def fill_array(log: str) -> list[float]:
    """`scores[i] = ...` into an array preallocated before the loop."""
    scores = np.zeros(10)
    async for i in aiter_checkpointed(range(10)):
        record(log, f"score:{i}")
        scores[i] = float(reading(i).sum()) * 1.5
    return scores.tolist()


@exact()
@resumable
async def accumulate_vectors(log: str) -> dict[str, object]:
    """`acc += vec` (in place on the array), a running maximum with
    `np.maximum(..., out=peak)`, and a count."""
    acc = np.zeros(3)
    peak = np.full(3, -np.inf)
    seen = 0
    async for i in aiter_checkpointed(range(9)):
        vec = reading(i)
        record(log, f"vec:{i}")
        acc += vec
        np.maximum(peak, vec, out=peak)
        seen += 1
    return {"mean": (acc / seen).tolist(), "peak": peak.tolist()}


@exact()
@resumable
async def append_rebinding(log: str) -> dict[str, object]:
    """`values = np.append(values, x)`: a new array every iteration."""
    values = np.array([], dtype=np.float64)
    matrix = np.empty((0, 3))
    async for i in aiter_checkpointed(range(8)):
        vec = reading(i)
        record(log, f"append:{i}")
        values = np.append(values, vec.max())
        matrix = np.vstack([matrix, vec])
    return {"values": values.tolist(), "column_sums": matrix.sum(axis=0).tolist()}
