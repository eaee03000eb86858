"""The codec gives back equal values of the same types, and refuses bad blobs.

Round trips are compared with `same()`, which is stricter than `==`: types
must match all the way down (1 != True, (1,) != [1]) and NaN equals NaN.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import enum
import fractions
import math
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resumable.errors import CorruptCheckpoint
from resumable.stores.codec import Codec, UnserializableValue

KEY = b"k" * 32


def same(a: Any, b: Any) -> bool:
    """Equal, with equal types at every level, and NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, dict):
        return list(a) == list(b) and all(
            same(ka, kb) and same(a[ka], b[kb]) for ka, kb in zip(a, b, strict=True)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def round_trip(value: Any, codec: Codec | None = None) -> Any:
    codec = codec or Codec()
    return codec.loads(codec.dumps(value))


scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: includes ints far beyond 64 bits
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary()
)


def _not_nan(value: Any) -> bool:
    return not (isinstance(value, float) and math.isnan(value))


def _hashable_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(inner, inner) | st.frozensets(inner, max_size=3)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.sets(hashables, max_size=4)
    )


# NaN is left out of keys and set members: a NaN key cannot be looked up.
hashables = st.recursive(scalars.filter(_not_nan), _hashable_containers, max_leaves=5)
plain = st.recursive(scalars, _containers, max_leaves=25)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: tuple[int, ...]


class Color(enum.IntEnum):
    RED = 1


class Label(str):
    __slots__ = ()


class Marker:
    """Unpickling this creates a file: proof that a blob was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.path),))


class TestPlainData:
    """Plain data goes through msgpack and comes back with exact types."""

    @given(plain)
    def test_round_trip(self, value):
        blob = Codec().dumps(value)
        assert same(Codec().loads(blob), value)

    @given(plain)
    def test_round_trip_signed(self, value):
        codec = Codec(secret_key=KEY)
        assert same(codec.loads(codec.dumps(value)), value)

    @given(plain)
    def test_msgpack_mode_stores_all_plain_data(self, value):
        codec = Codec(mode="msgpack")
        assert same(codec.loads(codec.dumps(value)), value)

    @pytest.mark.parametrize(
        "value",
        [
            {"i": 1, "total": 2.5, "name": "x", "done": [1, 2]},
            (1, (2, (3,))),
            {(1, "a"): frozenset({(2, 3)}), "s": {1, 2}},
            2**64,
            -(2**64) - 1,
            2**200,
            -(2**63),
            2**64 - 1,
            [True, 1, 1.0, b"1", "1", None],
            float("nan"),
            -0.0,
            {1: "int key", b"b": "bytes key", None: "none key", 2.5: "float key"},
            "ünïcödé ✓",
        ],
        ids=repr,
    )
    def test_examples_use_msgpack(self, value):
        blob = Codec().dumps(value)
        assert blob[:1] == b"m"
        assert same(Codec().loads(blob), value)

    def test_small_dict_is_compact(self):
        assert len(Codec().dumps({"i": 1})) < 10


class TestPickleFallback:
    """Anything msgpack cannot store exactly is pickled, keeping its type."""

    @pytest.mark.parametrize(
        "value",
        [
            collections.OrderedDict(a=1, b=(2,)),
            collections.defaultdict(list, {"a": [1]}),
            collections.Counter("hello"),
            bytearray(b"buffer"),
            {"nested": [bytearray(b"x")]},
            Point(1, (2, 3)),
            Color.RED,
            Label("label"),
            fractions.Fraction(1, 3),
            [1, collections.OrderedDict()],
            msgpack.ExtType(1, b"\x90"),
            "lone surrogate \udc80",
        ],
        ids=lambda v: type(v).__name__,
    )
    def test_exact_types(self, value):
        blob = Codec().dumps(value)
        assert blob[:1] == b"p"
        back = Codec().loads(blob)
        assert type(back) is type(value)
        assert back == value

    def test_defaultdict_keeps_its_factory(self):
        back = round_trip(collections.defaultdict(list))
        back["new"].append(1)
        assert back == {"new": [1]}

    def test_closure(self):
        offset = 10

        def add(x: int) -> int:
            return x + offset

        assert round_trip(add)(5) == 15

    def test_lambda_and_local_class(self):
        class Local:
            def __init__(self) -> None:
                self.items = [1, 2]

        back = round_trip({"f": lambda x: x * 2, "obj": Local()})
        assert back["f"](4) == 8
        assert back["obj"].items == [1, 2]
        assert type(back["obj"]).__name__ == "Local"

    @pytest.mark.parametrize("levels", [1024, 1025, 1026])
    def test_deep_nesting_at_msgpack_limits(self, levels):
        # msgpack packs 1025 levels of nesting but unpacks only 1024: whatever
        # dumps accepts must load (deeper values may be refused, cleanly, when
        # pickle meets the recursion limit too).
        value: list[Any] = []
        for _ in range(levels - 1):
            value = [value]
        try:
            blob = Codec().dumps(value)
        except UnserializableValue:
            return
        back = Codec().loads(blob)
        depth = 0
        while isinstance(back, list) and back:  # not ==: it recurses too deep
            back = back[0]
            depth += 1
        assert (depth, back) == (levels - 1, [])

    def test_nesting_beyond_every_limit_is_unserializable(self):
        # CPython 3.11-3.13 count C recursion (5,000 levels were beyond it).
        # Since 3.14 (gh-91079) the C limit is the thread's real stack: pickle
        # goes ~43,000 levels deep in 8 MiB, and deeper with a bigger
        # `ulimit -s`. So: 200,000 levels, pickled on a thread with an 8 MiB
        # stack of its own, whatever the limit of the shell running the tests.
        value: list[Any] = []
        for _ in range(200_000):
            value = [value]
        previous = threading.stack_size(8 * 1024 * 1024)
        try:
            with ThreadPoolExecutor(1) as pool:
                dumped = pool.submit(Codec().dumps, value)
                with pytest.raises(UnserializableValue, match="recursion"):
                    dumped.result()
        finally:
            threading.stack_size(previous)


class TestUnserializable:
    """A value that cannot be stored raises UnserializableValue with a reason."""

    def test_lock(self):
        with pytest.raises(UnserializableValue) as info:
            Codec().dumps({"lock": threading.Lock()})
        assert "lock" in info.value.reason
        assert info.value.reason in str(info.value)

    def test_generator(self):
        with pytest.raises(UnserializableValue, match="generator"):
            Codec().dumps(x for x in range(3))

    def test_survives_pickling(self):
        error = UnserializableValue("cannot pickle 'x'")
        back = pickle.loads(pickle.dumps(error))
        assert back.reason == "cannot pickle 'x'"


class TestMsgpackMode:
    """mode="msgpack" refuses pickle when writing and when reading."""

    @pytest.mark.parametrize(
        "value",
        [Point(1, (2,)), collections.OrderedDict(), bytearray(b"x"), {"a": [Color.RED]}],
        ids=lambda v: type(v).__name__,
    )
    def test_dumps_refuses(self, value):
        with pytest.raises(UnserializableValue, match="msgpack-only") as info:
            Codec(mode="msgpack").dumps(value)
        assert "not plain data" in info.value.reason

    def test_loads_refuses_a_pickle(self, tmp_path):
        marker = tmp_path / "unpickled"
        blob = Codec().dumps(Marker(str(marker)))
        assert blob[:1] == b"p"
        with pytest.raises(CorruptCheckpoint, match="msgpack-only"):
            Codec(mode="msgpack").loads(blob, execution_id="e1", key="k")
        assert not marker.exists()

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="mode='json'"):
            Codec(mode="json")  # type: ignore[arg-type]


class TestCorrupt:
    """Bytes the codec did not write give CorruptCheckpoint, naming where they were."""

    @pytest.mark.parametrize(
        "blob",
        [
            b"",
            b"z123",
            b"m",
            b"m\xc1",  # a reserved msgpack byte
            b"m\x92\x01",  # an array of 2 with 1 element
            b"m\x01\x02",  # trailing data
            b"m\xc7\x01\x63\x00",  # an extension type the codec never writes
            b"p",
            b"p\x80\x05garbage",
            Codec().dumps(Point(1, (2,)))[:-3],
        ],
        ids=repr,
    )
    def test_garbage(self, blob):
        with pytest.raises(CorruptCheckpoint) as info:
            Codec().loads(blob, execution_id="exec-7", key="loop:1")
        assert (info.value.execution_id, info.value.key) == ("exec-7", "loop:1")
        assert "exec-7" in str(info.value)

    @given(st.binary())
    def test_random_bytes_never_leak_other_errors(self, blob):
        with contextlib.suppress(CorruptCheckpoint):
            Codec(mode="msgpack").loads(blob)

    def test_missing_class_names_the_problem(self):
        blob = b"p" + pickle.dumps(Point(1, (2,))).replace(b"Point", b"Pxint")
        with pytest.raises(CorruptCheckpoint, match="Pxint"):
            Codec().loads(blob)


class TestSigning:
    """With a secret key, only blobs signed with that key are read, before decoding."""

    def test_signed_blob_differs_and_round_trips(self):
        signed = Codec(secret_key=KEY).dumps({"a": 1})
        assert signed[:1] == b"s"
        assert signed.endswith(Codec().dumps({"a": 1}))
        assert Codec(secret_key=KEY).loads(signed) == {"a": 1}

    def test_signature_is_bound_to_its_record(self):
        """A signed blob moved to another key or execution is refused."""
        codec = Codec(secret_key=KEY)
        blob = codec.dumps({"paid": True}, execution_id="run-a", key="#3")
        assert codec.loads(blob, execution_id="run-a", key="#3") == {"paid": True}
        with pytest.raises(CorruptCheckpoint, match="moved from another record"):
            codec.loads(blob, execution_id="run-a", key="#4")
        with pytest.raises(CorruptCheckpoint, match="moved from another record"):
            codec.loads(blob, execution_id="run-b", key="#3")
        # the place is length-prefixed: ("ab", "c") is not ("a", "bc")
        joined = codec.dumps_plain(1, execution_id="ab", key="c")
        with pytest.raises(CorruptCheckpoint):
            codec.loads(joined, execution_id="a", key="bc")

    @given(st.data())
    def test_any_flipped_byte_is_refused(self, data):
        codec = Codec(secret_key=KEY)
        blob = codec.dumps({"values": [1, 2, 3], "point": Point(1, (2,))})
        index = data.draw(st.integers(0, len(blob) - 1))
        flip = data.draw(st.integers(1, 255))
        tampered = blob[:index] + bytes([blob[index] ^ flip]) + blob[index + 1 :]
        with pytest.raises(CorruptCheckpoint):
            codec.loads(tampered)

    def test_truncated_is_refused(self):
        codec = Codec(secret_key=KEY)
        blob = codec.dumps([1, 2])
        for size in (1, 20, 33, len(blob) - 1):
            with pytest.raises(CorruptCheckpoint):
                codec.loads(blob[:size])

    def test_unsigned_blob_is_refused_when_a_key_is_set(self):
        with pytest.raises(CorruptCheckpoint, match="not signed"):
            Codec(secret_key=KEY).loads(Codec().dumps({"a": 1}), execution_id="e", key="k")

    def test_wrong_key_is_refused(self):
        blob = Codec(secret_key=KEY).dumps({"a": 1})
        with pytest.raises(CorruptCheckpoint, match="signature"):
            Codec(secret_key=b"another key").loads(blob)

    def test_signed_blob_without_a_key_is_refused(self):
        blob = Codec(secret_key=KEY).dumps({"a": 1})
        with pytest.raises(
            CorruptCheckpoint, match="this record is signed; set RESUMABLE_SECRET_KEY"
        ):
            Codec().loads(blob)

    def test_tampered_pickle_is_never_unpickled(self, tmp_path):
        marker = tmp_path / "unpickled"
        evil = b"p" + pickle.dumps(Marker(str(marker)))
        # Control: without a key, this payload runs code when read.
        Codec().loads(evil)
        assert marker.exists()
        marker.unlink()

        codec = Codec(secret_key=KEY)
        honest = codec.dumps(Point(1, (2,)))
        # Keep the honest signature, swap in the evil payload.
        with pytest.raises(CorruptCheckpoint, match="signature"):
            codec.loads(honest[:33] + evil)
        # Or present it unsigned.
        with pytest.raises(CorruptCheckpoint, match="not signed"):
            codec.loads(evil)
        assert not marker.exists()

    def test_blob_signed_twice_is_not_read(self):
        codec = Codec(secret_key=KEY)
        inner = codec.dumps(1)
        outer = b"s" + codec._sign(inner, "?", "?") + inner  # valid signature, signed blob
        with pytest.raises(CorruptCheckpoint, match="unknown format tag"):
            codec.loads(outer)

    @pytest.mark.parametrize(("key", "error"), [(b"", ValueError), ("text", TypeError)])
    def test_bad_keys(self, key, error):
        with pytest.raises(error, match="secret_key"):
            Codec(secret_key=key)


class TestThreads:
    """dumps is safe to call from several threads at once."""

    def test_concurrent_dumps(self):
        codec = Codec()
        values = [{"i": i, "t": (i, str(i)), "big": 2**70 + i} for i in range(200)]
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    for value in values:
                        assert same(codec.loads(codec.dumps(value)), value)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
