"""Store selection: argument, then configure(), then RESUMABLE_STORE, then
.resumable/state.db in the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobs import carry

import resumable
from resumable import MemoryStore, SQLiteStore, _config


@pytest.fixture(autouse=True)
def _fresh_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RESUMABLE_STORE", raising=False)
    _config.reset()
    yield
    _config.reset()


class TestStoreSelection:
    """The first of argument, configure(), environment and default wins."""

    async def test_default_is_sqlite_in_the_working_directory(self, tmp_path: Path):
        store = _config.resolve_store()
        assert isinstance(store, SQLiteStore)
        await carry.numbers(2)
        assert (tmp_path / ".resumable" / "state.db").exists()
        assert [e.name for e in await resumable.list_executions()] == ["numbers"]
        await store.close()

    async def test_environment_then_configure_then_argument(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setenv("RESUMABLE_STORE", f"sqlite:///{tmp_path / 'env.db'}")
        from_env = _config.resolve_store()
        assert from_env.url.endswith("env.db")
        configured = MemoryStore()
        resumable.configure(store=configured)
        assert _config.resolve_store() is configured
        explicit = MemoryStore()
        assert _config.resolve_store(explicit) is explicit
        await carry.numbers(2)
        assert len(await configured.list()) == 1
        assert await explicit.list() == []
        await from_env.close()

    def test_bad_configuration_is_refused(self):
        with pytest.raises(TypeError, match=r"configure\(store=\.\.\.\)"):
            resumable.configure(store=42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="lease_ttl"):
            resumable.configure(lease_ttl=0)
        with pytest.raises(ValueError, match="codec"):
            resumable.configure(codec="json")  # type: ignore[arg-type]

    async def test_msgpack_only_codec_refuses_pickle_at_the_checkpoint(self):
        from jobs import poison

        resumable.configure(store=MemoryStore())
        assert await poison.tally(4) == 6  # auto: the dataclass is pickled
        resumable.configure(codec="msgpack")
        with pytest.raises(resumable.CheckpointError) as caught:
            await poison.tally(4)
        assert caught.value.variable == "kept"
        assert caught.value.type_name == "jobs.poison.Tally"
        assert "msgpack-only" in caught.value.reason
