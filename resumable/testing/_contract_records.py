"""The contract's record tests: write, size caps, update, load and
load_headers."""

from __future__ import annotations

import asyncio

import pytest

from resumable.errors import CheckpointError, LeaseLost, RecordTooLarge
from resumable.stores.base import ExecutionUpdate, Store
from resumable.testing._contract_support import MakeRecord, created, taken_over

__all__ = ["RecordContract"]


def header_rule(key: str) -> bool:
    """The rule of Store.load_headers, written out independently of the stores."""
    return not key.startswith("memo:") and "+" not in key and "=" not in key


class RecordContract:
    """What an execution's records hold after each operation."""

    class TestWrite:
        """write applies puts and deletes atomically, fenced by the lease token."""

        async def test_puts_are_loaded_back(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1", "b": b"\x00\xff" * 100, "": b""})
            assert await store.load("e1") == {"a": b"1", "b": b"\x00\xff" * 100, "": b""}

        async def test_put_overwrites(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1"})
            await store.write(lease, {"a": b"2"})
            assert await store.load("e1") == {"a": b"2"}

        async def test_puts_and_deletes_in_one_write(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1", "b": b"2", "c": b"3"})
            await store.write(lease, {"d": b"4", "a": b"1b"}, deletes=["b", "c", "never-written"])
            assert await store.load("e1") == {"a": b"1b", "d": b"4"}

        async def test_a_key_both_deleted_and_put_ends_up_put(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1"})
            await store.write(lease, {"a": b"2"}, deletes={"a"})
            assert await store.load("e1") == {"a": b"2"}

        async def test_empty_write_is_allowed(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {})
            assert await store.load("e1") == {}

        async def test_stale_token_raises_lease_lost_and_changes_nothing(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            old, new = await taken_over(store, make_record("e1"))
            await store.write(new, {"a": b"new owner"})
            with pytest.raises(LeaseLost) as info:
                await store.write(old, {"a": b"old owner", "b": b"old"}, deletes=["a"])
            assert info.value.execution_id == "e1"
            assert info.value.owner == "owner-b"
            assert await store.load("e1") == {"a": b"new owner"}

        async def test_write_to_a_deleted_execution_raises_lease_lost(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.delete("e1")
            with pytest.raises(LeaseLost):
                await store.write(lease, {"a": b"1"})
            assert await store.load("e1") == {}

        async def test_executions_do_not_share_keys(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            one = await created(store, make_record("e1"))
            two = await created(store, make_record("e2"))
            await store.write(one, {"k": b"one"})
            await store.write(two, {"k": b"two"})
            await store.write(two, {}, deletes=["k"])
            assert await store.load("e1") == {"k": b"one"}
            assert await store.load("e2") == {}

        async def test_concurrent_writers_of_one_lease_all_land(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await asyncio.gather(*(store.write(lease, {f"k{i}": b"%d" % i}) for i in range(50)))
            assert await store.load("e1") == {f"k{i}": b"%d" % i for i in range(50)}

    class TestOversize:
        """A record over the store's size cap (`record_limit`) is refused, and
        nothing of its write lands."""

        async def test_oversize_put_refused_with_nothing_written(
            self, store: Store, make_record: MakeRecord, record_limit: int
        ) -> None:
            limit = record_limit
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"old", "gone": b"x"})
            too_big = b"x" * (limit + 1)
            with pytest.raises(RecordTooLarge, match=f"{limit + 1:,} bytes") as info:
                await store.write(lease, {"a": b"new", "big": too_big}, deletes=["gone"])
            assert isinstance(info.value, CheckpointError | ValueError)
            assert (info.value.key, info.value.size, info.value.limit) == ("big", limit + 1, limit)
            message = str(info.value)
            assert "'big'" in message
            assert "'e1'" in message
            assert f"{limit:,}" in message
            assert await store.load("e1") == {"a": b"old", "gone": b"x"}
            assert store.stats.writes == 1

        async def test_a_record_at_the_limit_fits(
            self, store: Store, make_record: MakeRecord, record_limit: int
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"edge": b"x" * record_limit})
            assert await store.load("e1") == {"edge": b"x" * record_limit}

        async def test_oversize_result_refused(
            self, store: Store, make_record: MakeRecord, record_limit: int
        ) -> None:
            lease = await created(store, make_record("e1"))
            too_big = b"x" * (record_limit + 1)
            with pytest.raises(RecordTooLarge, match="'result'"):
                await store.update(lease, ExecutionUpdate(status="completed", result=too_big))
            stored = await store.get("e1")
            assert stored is not None
            assert (stored.status, stored.result) == ("running", None)

    class TestUpdate:
        """update changes the given fields under the fence and returns the record."""

        async def test_sets_given_fields_and_keeps_the_rest(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            record = make_record("e1", fingerprint="fp-old", attempts=1)
            lease = await created(store, record)
            before = await store.get("e1")
            assert before is not None
            change = ExecutionUpdate(
                status="failed",
                finished_at=1234.5,
                error=b"pickled error",
                error_text="Traceback ...",
                attempts=2,
            )
            updated = await store.update(lease, change)
            assert updated == await store.get("e1")
            assert updated.replace(updated_at=0.0) == before.replace(
                status="failed",
                finished_at=1234.5,
                error=b"pickled error",
                error_text="Traceback ...",
                attempts=2,
                updated_at=0.0,
            )
            assert updated.updated_at >= before.updated_at

        async def test_every_field(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            change = ExecutionUpdate(
                status="completed",
                fingerprint="fp-2",
                started_at=1.5,
                finished_at=2.5,
                result=b"result",
                error=b"error",
                error_text="text",
                attempts=7,
                cancel_requested=True,
            )
            updated = await store.update(lease, change)
            assert (
                updated.status,
                updated.fingerprint,
                updated.started_at,
                updated.finished_at,
                updated.result,
                updated.error,
                updated.error_text,
                updated.attempts,
                updated.cancel_requested,
            ) == ("completed", "fp-2", 1.5, 2.5, b"result", b"error", "text", 7, True)
            assert (updated.owner, updated.lease_token) == ("owner-a", lease.token)

        async def test_clear_checkpoints(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1", "b": b"2"})
            await store.update(lease, ExecutionUpdate(clear_checkpoints=True))
            assert await store.load("e1") == {}
            await store.write(lease, {"c": b"3"})
            assert await store.load("e1") == {"c": b"3"}

        async def test_replace_checkpoints_with_the_outcome(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            """Compaction at completion: the records become exactly the summary,
            in the transaction that stores the result."""
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1", "b": b"2", "c": b"3"})
            summary = {"a": b"summary", f"k{'x' * 300}": b"\x00" * 10}
            summary |= {f"many{i}": b"%d" % i for i in range(1200)}  # past Lua's unpack chunk
            update = ExecutionUpdate(status="completed", result=b"r", replace_checkpoints=summary)
            updated = await store.update(lease, update)
            assert (updated.status, updated.result) == ("completed", b"r")
            assert await store.load("e1") == summary
            await store.update(lease, ExecutionUpdate(replace_checkpoints={}))
            assert await store.load("e1") == {}

        async def test_args_are_replaced_with_the_checkpoints(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            """`migrate --sign`: the arguments and every record, in one update."""
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1"})
            update = ExecutionUpdate(args=b"signed args", replace_checkpoints={"a": b"signed 1"})
            updated = await store.update(lease, update)
            assert updated.args == b"signed args"
            found = await store.get("e1")
            assert found is not None
            assert (found.args, found.status) == (b"signed args", "running")
            assert await store.load("e1") == {"a": b"signed 1"}

        async def test_replace_checkpoints_is_fenced(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            old, new = await taken_over(store, make_record("e1"))
            await store.write(new, {"a": b"1"})
            with pytest.raises(LeaseLost):
                await store.update(old, ExecutionUpdate(replace_checkpoints={"b": b"2"}))
            assert await store.load("e1") == {"a": b"1"}

        async def test_the_format_field_round_trips(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            await created(store, make_record("e1", format=2))
            await created(store, make_record("e0"))
            found, default = await store.get("e1"), await store.get("e0")
            assert found is not None
            assert default is not None
            assert (found.format, default.format) == (2, 1)

        async def test_without_clear_checkpoints_they_stay(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1"})
            await store.update(lease, ExecutionUpdate(status="failed"))
            assert await store.load("e1") == {"a": b"1"}

        async def test_stale_token_raises_lease_lost_and_changes_nothing(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            old, new = await taken_over(store, make_record("e1"))
            await store.write(new, {"a": b"1"})
            before = await store.get("e1")
            with pytest.raises(LeaseLost):
                await store.update(
                    old, ExecutionUpdate(status="completed", result=b"r", clear_checkpoints=True)
                )
            assert await store.get("e1") == before
            assert await store.load("e1") == {"a": b"1"}

    class TestLoad:
        """load returns exactly the state after the last acknowledged write."""

        async def test_unknown_id_has_no_checkpoints(self, store: Store) -> None:
            assert await store.load("nope") == {}

        async def test_matches_a_model_after_many_writes(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            model: dict[str, bytes] = {}
            for i in range(60):
                puts = {f"k{i % 7}": b"%d" % i, f"n{i}": b"x" * (i % 5)}
                deletes = [f"n{i - 3}", f"k{(i + 3) % 7}"] if i % 4 == 0 else []
                await store.write(lease, puts, deletes)
                for key in deletes:
                    model.pop(key, None)
                model.update(puts)
            assert await store.load("e1") == model

        async def test_returns_a_copy(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"a": b"1"})
            loaded = await store.load("e1")
            loaded["b"] = b"2"
            assert await store.load("e1") == {"a": b"1"}

    class TestLoadHeaders:
        """load_headers returns the records of header (and loop location) keys:
        none of + = in the key, no memo: prefix; exactly as load has them."""

        KEYS = (
            "#0", "#0@", "#0+out.0", "#0+out.1", "#0+out.10", "#0=0", "#0=1", "#0=10",
            "#0[3]/#1", "#0[3]/#1@", "#0[3]/#1=2", "#0[3]/#1+acc.0", "#1", "#1=5", "#10",
            "#10=0", "#2", "memo:fetch:ab12", "memo:fetch:cd=+", "", "a=b", "x+", "zz", "ü", "ü=1",
        )  # fmt: skip

        async def test_unknown_id_has_none(self, store: Store) -> None:
            assert await store.load_headers("nope") == {}

        async def test_only_header_keys(self, store: Store, make_record: MakeRecord) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {key: key.encode() * 3 for key in self.KEYS})
            found = await store.load_headers("e1")
            assert found == {key: key.encode() * 3 for key in self.KEYS if header_rule(key)}
            kept = {"#0", "#0@", "#0[3]/#1", "#0[3]/#1@", "#1", "#10", "#2", "", "zz", "ü"}
            assert set(found) == kept

        async def test_the_rule_is_the_record_formats(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            from resumable.runtime import wire

            lease = await created(store, make_record("e1"))
            await store.write(lease, dict.fromkeys(self.KEYS, b"v"))
            found = await store.load_headers("e1")
            for key in self.KEYS:
                kind = wire.parse_key(key).kind
                if kind in ("header", "location"):
                    assert key in found, key
                elif kind in ("delta", "item", "memo"):
                    assert key not in found, key

        async def test_headers_among_many_other_records(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            """Runs of items and deltas longer than any page or scan step."""
            lease = await created(store, make_record("e1"))
            puts = {f"#{p}": b"h%d" % p for p in range(0, 12, 2)}
            puts |= {f"#{p}@": b"at" for p in range(0, 12, 4)}
            for p in (0, 4, 10):
                puts |= {f"#{p}={i}": b"i" * (i % 300) for i in range(1500)}
                puts |= {f"#{p}+out.{i}": b"d" for i in range(700)}
            puts |= {f"memo:s:{i}": b"m" for i in range(600)}
            puts |= {f"#4[{i}]/#0": b"inner" for i in range(300)}
            await store.write(lease, puts)
            expected = {key: value for key, value in puts.items() if header_rule(key)}
            assert len(expected) == 6 + 3 + 300
            assert await store.load_headers("e1") == expected

        async def test_follows_writes_deletes_and_replacement(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"#0": b"1", "#0=0": b"r", "#1": b"x"})
            await store.write(lease, {"#0": b"2", "#0=1": b"r"}, deletes=["#1"])
            assert await store.load_headers("e1") == {"#0": b"2"}
            await store.update(
                lease, ExecutionUpdate(replace_checkpoints={"#0": b"sum", "#0=0": b""})
            )
            assert await store.load_headers("e1") == {"#0": b"sum"}
            await store.write(lease, {"#5": b"5"})
            assert await store.load_headers("e1") == {"#0": b"sum", "#5": b"5"}

        async def test_executions_do_not_share_keys(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            one = await created(store, make_record("e1"))
            two = await created(store, make_record("e2"))
            await store.write(one, {"#0": b"one", "#0=0": b"r"})
            await store.write(two, {"#1": b"two"})
            assert await store.load_headers("e1") == {"#0": b"one"}
            assert await store.load_headers("e2") == {"#1": b"two"}

        async def test_returns_a_copy_and_is_not_a_load(
            self, store: Store, make_record: MakeRecord
        ) -> None:
            lease = await created(store, make_record("e1"))
            await store.write(lease, {"#0": b"1"})
            found = await store.load_headers("e1")
            found["#9"] = b"2"
            assert await store.load_headers("e1") == {"#0": b"1"}
            assert store.stats.loads == 0
