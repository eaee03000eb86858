"""Real crashes of amap, agather and steps: SIGKILL a child process mid-way,
resume in a fresh one, and count what ran (tests/jobs/batch.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from support.crashing import count, kill_after_lines, read_store, resume_fresh, start

DELAY = 0.003


def recorded_items(store_url: str, execution_id: str, key: str) -> set[int]:
    """Indices of the fan-out at `key` whose outcome was in the store at the kill."""

    prefix = f"{key}="
    loaded = read_store(store_url, lambda store: store.load(execution_id))
    return {int(k[len(prefix) :]) for k in loaded if k.startswith(prefix)}


class TestKillBatches:
    """Only work in flight at the kill runs again."""

    @pytest.mark.parametrize("lines", [7, 60, 150, 260])
    def test_amap(self, tmp_path: Path, store_url: str, lines: int):
        n = 300
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        child = start(store_url, execution_id, "batch.mapped", n, log, DELAY)
        assert kill_after_lines(child, log, lines, DELAY)
        done = recorded_items(store_url, execution_id, "#0")
        assert resume_fresh(store_url, execution_id) == [i * i for i in range(n)]
        effects = count(log)
        assert set(effects) == {f"item:{i}" for i in range(n)}
        assert all(effects[f"item:{i}"] == 1 for i in done), "a recorded item ran again"
        rerun = [tag for tag, times in effects.items() if times > 1]
        assert len(rerun) <= 8, f"more than the 8 in flight ran again: {rerun}"

    @pytest.mark.parametrize("lines", [3, 20, 45])
    def test_agather(self, tmp_path: Path, store_url: str, lines: int):
        n = 50
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        child = start(store_url, execution_id, "batch.gathered", n, log, DELAY * 30)
        kill_after_lines(child, log, lines, 0)
        done = recorded_items(store_url, execution_id, "#0")
        assert resume_fresh(store_url, execution_id) == [f"r{i}" for i in range(n)]
        effects = count(log)
        assert set(effects) == {f"gather:{i}" for i in range(n)}
        assert all(effects[f"gather:{i}"] == 1 for i in done)

    @pytest.mark.parametrize("lines", [1, 4, 8, 9, 12, 15])
    def test_steps_before_and_between_loops(self, tmp_path: Path, store_url: str, lines: int):
        n = 6
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        child = start(store_url, execution_id, "batch.pipeline", n, log, DELAY * 5)
        kill_after_lines(child, log, lines, DELAY)
        result = resume_fresh(store_url, execution_id)
        assert result == {
            "total": 45,
            "note": "published 45",
            "squares": [i * i for i in range(n)],
            "tail": ["r0", "r1"],
        }
        effects = count(log)
        assert effects["step:config"] == 1 or lines == 1
        assert effects["step:config"] <= 2 and effects["step:publish:45"] <= 2
        assert sum(effects.values()) - len(effects) <= 4  # in-flight work only
