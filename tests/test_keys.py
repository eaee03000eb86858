"""Secret keys: `resumable keygen`, and rotating the key that signs records
(the new key writes; fallback keys still read until they are dropped)."""

from __future__ import annotations

import stat

import pytest
from jobs import watched
from support.clirun import cli, cli_env

from resumable import _config, resume
from resumable.errors import CorruptCheckpoint
from resumable.stores import Codec, MemoryStore
from resumable.testing import SimulatedCrash, crash_after

OLD, NEW = b"old-key-0123456789", b"new-key-9876543210"


class TestCodecRotation:
    def test_fallback_keys_read_and_only_the_first_key_writes(self):
        old_blob = Codec(secret_key=OLD).dumps({"a": 1}, execution_id="e", key="k")
        rotating = Codec(secret_key=NEW, fallback_keys=[OLD])
        assert rotating.loads(old_blob, execution_id="e", key="k") == {"a": 1}
        new_blob = rotating.dumps({"b": 2}, execution_id="e", key="k")
        assert Codec(secret_key=NEW).loads(new_blob, execution_id="e", key="k") == {"b": 2}
        with pytest.raises(CorruptCheckpoint, match="signature does not match"):
            Codec(secret_key=OLD).loads(new_blob, execution_id="e", key="k")
        # Rotation over: the old key is dropped, and what it signed is refused.
        with pytest.raises(CorruptCheckpoint, match="signature does not match"):
            Codec(secret_key=NEW).loads(old_blob, execution_id="e", key="k")

    def test_a_fallback_does_not_let_a_record_move(self):
        blob = Codec(secret_key=OLD).dumps(1, execution_id="e", key="k")
        with pytest.raises(CorruptCheckpoint):
            Codec(secret_key=NEW, fallback_keys=[OLD]).loads(blob, execution_id="e", key="other")

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            ({"fallback_keys": [OLD]}, ValueError, "needs a secret_key"),
            ({"secret_key": NEW, "fallback_keys": [b""]}, ValueError, "empty key"),
            ({"secret_key": NEW, "fallback_keys": ["text"]}, TypeError, "expected bytes"),
        ],
    )
    def test_bad_keys_are_refused(self, kwargs, error, message):
        with pytest.raises(error, match=message):
            Codec(**kwargs)


class TestConfiguredKeys:
    def test_the_environment_lists_fallbacks(self, monkeypatch):
        monkeypatch.setenv("RESUMABLE_SECRET_KEY", NEW.decode())
        monkeypatch.setenv("RESUMABLE_SECRET_KEY_FALLBACKS", f" {OLD.decode()} , other-old ,")
        codec = _config.codec_for(MemoryStore())
        for key in (OLD, b"other-old", NEW):
            blob = Codec(secret_key=key).dumps(7, execution_id="e", key="k")
            assert codec.loads(blob, execution_id="e", key="k") == 7

    def test_fallbacks_without_a_key_to_write_with_are_refused(self, monkeypatch):
        monkeypatch.delenv("RESUMABLE_SECRET_KEY", raising=False)
        monkeypatch.setenv("RESUMABLE_SECRET_KEY_FALLBACKS", OLD.decode())
        with pytest.raises(ValueError, match=r"no key to write with.*resumable keygen"):
            _config.codec_for(MemoryStore())

    def test_configure_takes_a_list_of_fallbacks(self):
        with pytest.raises(TypeError, match="a list of keys"):
            _config.configure(secret_key_fallbacks="one-key")  # type: ignore[arg-type]

    async def test_an_execution_resumes_across_a_rotation(self, sqlite, monkeypatch):
        """Crashed under the old key, resumed under the new one with the old
        as fallback: the exact result, and what the resume wrote is signed
        with the new key, so it reads without the fallback."""
        monkeypatch.setattr(_config._config, "secret_key", OLD)
        with crash_after(4), pytest.raises(SimulatedCrash) as crash:
            await watched.watched.options(execution_id="r", store=sqlite)(6, 0.0)
        await sqlite.release(crash.value.lease)  # as if the killed process's lease ran out
        monkeypatch.setattr(_config._config, "secret_key", NEW)
        with pytest.raises(CorruptCheckpoint, match="signature does not match"):
            await resume("r", store=sqlite)
        monkeypatch.setattr(_config._config, "secret_key_fallbacks", (OLD,))
        expected = await watched.watched.options(store="memory://")(6, 0.0)
        assert await resume("r", store=sqlite) == expected
        monkeypatch.setattr(_config._config, "secret_key_fallbacks", ())
        assert await resume("r", store=sqlite) == expected  # the result: new key


class TestKeygen:
    def test_prints_a_new_key_each_time(self):
        first, second = cli("keygen"), cli("keygen")
        assert first.returncode == second.returncode == 0, first.stderr
        keys = [first.stdout.strip(), second.stdout.strip()]
        assert keys[0] != keys[1]
        assert all(len(k) == 43 and "," not in k for k in keys)

    def test_writes_a_file_only_its_owner_can_read(self, tmp_path):
        path = tmp_path / "keys" / "resumable.key"
        made = cli("keygen", "--file", str(path))
        assert made.returncode == 0, made.stderr
        assert made.stdout == ""
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = path.read_text().strip()
        assert len(key) == 43
        again = cli("keygen", "--file", str(path))
        assert again.returncode == 2
        assert "exists" in again.stderr and "not replaced" in again.stderr
        assert path.read_text().strip() == key  # untouched

    def test_the_key_signs_and_reads(self, tmp_path, url, sqlite):
        key = cli("keygen").stdout.strip()
        env = cli_env(RESUMABLE_SECRET_KEY=key)
        run = cli("resume", "nope", store=url, env=env)
        assert run.returncode == 3  # the key was accepted; the id is unknown
        codec = Codec(secret_key=key.encode())
        assert codec.loads(codec.dumps([1, 2])) == [1, 2]


def test_a_list_of_keys_rotates():
    try:
        _config.configure(secret_key=["new-key", OLD])
        codec = _config.codec_for(MemoryStore())
        old_blob = Codec(secret_key=OLD).dumps(1, execution_id="e", key="k")
        assert codec.loads(old_blob, execution_id="e", key="k") == 1
        written = codec.dumps(2, execution_id="e", key="k")
        assert Codec(secret_key=b"new-key").loads(written, execution_id="e", key="k") == 2
        with pytest.raises(ValueError, match="at least one key"):
            _config.configure(secret_key=[])
    finally:
        _config.reset()
