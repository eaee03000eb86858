"""Format 4 with a key: one MAC per loop iteration, on the header, covers the
values carried whole inside it and every delta record since the last chunk
(wire.CHAINED_FORMAT). Delta records carry no signature of their own, so
each test here changes, drops, moves or plants one and checks that the
resume refuses it before decoding anything, or gives the exact result."""

from __future__ import annotations

import pickle
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from support.planted import Planted

from resumable import (
    CorruptCheckpoint,
    SQLiteStore,
    _config,
    aiter_checkpointed,
    configure,
    resumable,
    resume,
    status,
)
from resumable.runtime import deltas, wire
from resumable.stores.codec import Codec
from resumable.testing import SimulatedCrash, crash_after


@resumable
async def grow(n: int) -> tuple[int, list[str], dict[int, str], int]:
    """A list, a dict (deltas) and a total (carried whole, in the header)."""
    results: list[str] = []
    index: dict[int, str] = {}
    total = 0
    async for i in aiter_checkpointed(range(n)):
        results.append(f"r{i}")
        index[i] = f"v{i}"
        total += i
    return len(results), results[-3:], {k: index[k] for k in sorted(index)[-2:]}, total


def expected(n: int) -> tuple[int, list[str], dict[int, str], int]:
    return n, [f"r{i}" for i in range(n)][-3:], {i: f"v{i}" for i in range(n - 2, n)}, sum(range(n))


KEYED = Codec(secret_key=b"chained-test-key")


@pytest.fixture(name="signed")
def _signed():
    configure(secret_key="chained-test-key")
    yield
    _config.reset()


async def crashed(path: Path, n: int, after: int) -> str:
    store = SQLiteStore(path)
    execution_id = uuid.uuid4().hex
    with crash_after(after), pytest.raises(SimulatedCrash) as crash:
        await grow.options(execution_id=execution_id, store=store)(n)
    await store.release(crash.value.lease)
    await store.close()
    return execution_id


def rows(path: Path, execution_id: str) -> dict[str, bytes]:
    with closing(sqlite3.connect(path)) as db:
        found = db.execute(
            "SELECT key, value FROM checkpoints WHERE execution_id = ?", (execution_id,)
        ).fetchall()
    return {key: bytes(value) for key, value in found}


def put(path: Path, execution_id: str, key: str, value: bytes | None) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        if value is None:
            db.execute(
                "DELETE FROM checkpoints WHERE execution_id = ? AND key = ?", (execution_id, key)
            )
        else:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (execution_id, key, value) VALUES (?, ?, ?)",
                (execution_id, key, value),
            )


async def resumed(path: Path, execution_id: str) -> object:
    store = SQLiteStore(path)
    try:
        return await resume(execution_id, store=store)
    finally:
        await store.close()


@pytest.mark.usefixtures("signed")
class TestOneMacPerIteration:
    async def test_the_header_is_chained_and_the_deltas_unsigned(self, tmp_path: Path):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        found = rows(path, execution_id)
        assert found["#0"][:1] == b"c"
        assert found["#0@"][:1] == b"s"  # layout: signed on its own
        for name in ("results", "index"):
            assert found[wire.delta_key("#0", name, 0)][:1] == b"s"  # the base
            assert found[wire.delta_key("#0", name, 2)][:1] == b"m"  # a delta
        assert await resumed(path, execution_id) == expected(10)

    async def test_progress_reads_a_chained_header_without_its_deltas(self, tmp_path: Path):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        store = SQLiteStore(path)
        try:
            seen = await status(execution_id, store=store)
        finally:
            await store.close()
        assert [loop.done for loop in seen.progress] == [5]

    @pytest.mark.parametrize("where", [0, 1, -1])
    async def test_a_changed_byte_in_any_delta_is_refused(self, tmp_path: Path, where: int):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        for name in ("results", "index"):
            for seq in (1, 3):
                copy = tmp_path / f"{name}{seq}.db"
                copy.write_bytes(path.read_bytes())
                key = wire.delta_key("#0", name, seq)
                value = rows(copy, execution_id)[key]
                put(copy, execution_id, key, _flip(value, where))
                with pytest.raises(CorruptCheckpoint) as caught:
                    await resumed(copy, execution_id)
                assert caught.value.execution_id == execution_id
                assert caught.value.key == "#0"

    async def test_a_dropped_delta_is_refused(self, tmp_path: Path):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        put(path, execution_id, wire.delta_key("#0", "index", 2), None)
        with pytest.raises(CorruptCheckpoint, match="missing"):
            await resumed(path, execution_id)

    async def test_deltas_swapped_between_two_values_are_refused(self, tmp_path: Path):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        found = rows(path, execution_id)
        first, second = wire.delta_key("#0", "results", 2), wire.delta_key("#0", "results", 3)
        put(path, execution_id, first, found[second])
        put(path, execution_id, second, found[first])
        with pytest.raises(CorruptCheckpoint, match="signature does not match"):
            await resumed(path, execution_id)

    async def test_a_delta_moved_from_another_execution_is_refused(self, tmp_path: Path):
        path = tmp_path / "state.db"
        first = await crashed(path, 10, after=5)
        second = await crashed(path, 10, after=5)
        key = wire.delta_key("#0", "results", 2)
        # The same bytes (r1 in both): a MAC cannot tell them apart, and
        # need not, since the value is the same.
        assert rows(path, second)[key] == rows(path, first)[key]
        put(path, second, key, rows(path, first)[wire.delta_key("#0", "results", 3)])
        with pytest.raises(CorruptCheckpoint, match="signature does not match"):
            await resumed(path, second)

    async def test_a_planted_pickle_in_a_delta_never_runs(self, tmp_path: Path):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        marker = tmp_path / "ran"
        planted = pickle.dumps(Planted(marker))
        for tag in (b"p", b"l", b"m", b""):
            put(path, execution_id, wire.delta_key("#0", "results", 2), tag + planted)
            with pytest.raises(CorruptCheckpoint):
                await resumed(path, execution_id)
            assert not marker.exists()

    async def test_an_unchained_header_vouches_for_nothing(self, tmp_path: Path):
        """A header swapped for an unsigned one is refused; one signed on its
        own (as `migrate --sign` writes) is read, but then every delta needs
        its own signature: the unsigned ones a chained header vouched for
        are refused."""
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        chained = rows(path, execution_id)["#0"]
        inner = chained[17:]  # "c", the 16-byte MAC, then the plain header
        assert inner[:1] == b"m"
        signed = KEYED.dumps_plain([4, [4, 4]], execution_id=execution_id, key="#0")
        first_deltas = {wire.delta_key("#0", name, 1) for name in ("results", "index")}
        for replacement, refused in ((inner, {"#0"}), (signed, first_deltas)):
            put(path, execution_id, "#0", replacement)
            with pytest.raises(CorruptCheckpoint, match="is not signed") as caught:
                await resumed(path, execution_id)
            assert caught.value.key in refused

    async def test_a_changed_header_naming_fewer_deltas_is_refused(self, tmp_path: Path):
        """The reader learns which deltas to check from the header itself,
        unverified: a header rewritten to name fewer fails its MAC."""
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        chained = rows(path, execution_id)["#0"]
        header = KEYED.loads_plain(chained)
        header[1] = [seq - 1 for seq in header[1]]
        forged = chained[:17] + b"m" + _packed(header)
        put(path, execution_id, "#0", forged)
        with pytest.raises(CorruptCheckpoint, match="signature does not match"):
            await resumed(path, execution_id)

    async def test_a_changed_value_carried_whole_is_refused(self, tmp_path: Path):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        chained = rows(path, execution_id)["#0"]
        header = KEYED.loads_plain(chained)
        carried = header[3][wire.CARRIED]
        header[3][wire.CARRIED] = carried[:-1] + bytes([carried[-1] ^ 1])
        put(path, execution_id, "#0", chained[:17] + b"m" + _packed(header))
        with pytest.raises(CorruptCheckpoint, match="signature does not match"):
            await resumed(path, execution_id)

    async def test_the_wrong_key_is_refused(self, tmp_path: Path):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        configure(secret_key="another-key")
        with pytest.raises(CorruptCheckpoint, match="another key"):
            await resumed(path, execution_id)
        configure(secret_key="chained-test-key")
        assert await resumed(path, execution_id) == expected(10)

    async def test_without_the_key_a_chained_header_is_refused(self, tmp_path: Path):
        path = tmp_path / "state.db"
        execution_id = await crashed(path, 10, after=5)
        _config.reset()
        configure(allow_unsigned=True)
        with pytest.raises(CorruptCheckpoint, match="set RESUMABLE_SECRET_KEY"):
            await resumed(path, execution_id)


@pytest.fixture(name="small_folds")
def _small_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run records its deltas per chunk in its layout, so resumes use it too.
    monkeypatch.setattr(deltas, "FOLD", 8)


@pytest.mark.usefixtures("signed", "small_folds")
class TestChunks:
    """A fold resets the chain: the chunk is signed on its own, and the
    deltas after it are chained again."""

    async def test_a_crash_after_a_fold_resumes_exactly(self, tmp_path: Path):
        path = tmp_path / "state.db"
        n = deltas.FOLD * 2 + 5
        execution_id = await crashed(path, n, after=deltas.FOLD + 4)
        found = rows(path, execution_id)
        chunk = wire.chunk_key("#0", "results", deltas.FOLD)
        assert found[chunk][:1] == b"s"
        assert wire.delta_key("#0", "results", deltas.FOLD - 1) not in found
        assert found[wire.delta_key("#0", "results", deltas.FOLD + 1)][:1] == b"m"
        copy = tmp_path / "copy.db"
        copy.write_bytes(path.read_bytes())
        assert await resumed(path, execution_id) == expected(n)
        put(copy, execution_id, chunk, _flip(found[chunk], -1))
        with pytest.raises(CorruptCheckpoint) as caught:
            await resumed(copy, execution_id)
        assert caught.value.key == chunk

    async def test_a_crash_at_every_checkpoint_resumes_exactly(self, tmp_path: Path):
        """Two folds, a crash at each checkpoint of the first attempt, then a
        second crash a few checkpoints into the resume."""
        n = deltas.FOLD * 2 + 3
        for after in range(1, n + 1):
            path = tmp_path / f"{after}.db"
            execution_id = await crashed(path, n, after=after)
            store = SQLiteStore(path)
            try:
                with crash_after(3):
                    await resume(execution_id, store=store)
            except SimulatedCrash as crash:  # not when fewer than 3 checkpoints were left
                await store.release(crash.lease)
            await store.close()
            assert await resumed(path, execution_id) == expected(n)


class TestOlderFormats:
    async def test_a_format_3_execution_goes_on_signing_every_record(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        configure(secret_key="chained-test-key")
        try:
            path = tmp_path / "state.db"
            with monkeypatch.context() as patched:
                patched.setattr(wire, "FORMAT_VERSION", 3)
                execution_id = await crashed(path, 10, after=3)
            store = SQLiteStore(path)
            record = await store.get(execution_id)
            await store.close()
            assert record is not None and record.format == 3
            store = SQLiteStore(path)
            with crash_after(2), pytest.raises(SimulatedCrash) as crash:
                await resume(execution_id, store=store)
            await store.release(crash.value.lease)
            await store.close()
            found = rows(path, execution_id)
            assert all(value[:1] == b"s" for value in found.values()), found
            assert await resumed(path, execution_id) == expected(10)
        finally:
            _config.reset()

    async def test_unsigned_format_4_writes_plain_records(self, tmp_path: Path):
        configure(allow_unsigned=True)
        try:
            path = tmp_path / "state.db"
            execution_id = await crashed(path, 10, after=5)
            found = rows(path, execution_id)
            assert {value[:1] for value in found.values()} == {b"m"}
            assert await resumed(path, execution_id) == expected(10)
        finally:
            _config.reset()


def _flip(value: bytes, where: int) -> bytes:
    at = where % len(value)
    return value[:at] + bytes([value[at] ^ 0x40]) + value[at + 1 :]


def _packed(value: object) -> bytes:
    import msgpack

    return msgpack.packb(value, use_bin_type=True)
