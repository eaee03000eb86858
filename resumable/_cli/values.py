"""What an execution was called with, described without running its code.

`show` prints each argument's type and size, never its value: arguments may
hold secrets, and printing them is an explicit `--values`. Describing must
not execute anything either, because unpickling runs code. Plain data
(msgpack) decodes safely. A pickle is read by an unpickler whose
`find_class` never imports: every class or function it names becomes an inert
stand-in, so the structure and the type names come out and no constructor,
`__reduce__` or `__setstate__` of the user's ever runs.

The blob format is the codec's (resumable/stores/codec.py): a one-byte tag,
``m`` msgpack, ``p`` pickle, or ``s`` + a 32-byte HMAC-SHA256 + one of those.
The signature is not checked here: nothing decoded is trusted or executed.
"""

from __future__ import annotations

import io
import pickle
import reprlib
from typing import Any, ClassVar

from rich.filesize import decimal

from resumable.errors import CorruptCheckpoint
from resumable.stores.codec import _MAC_SIZE, _MSGPACK_TAG, _PICKLE_TAG, _SIGNED_TAG, Codec

# Callables that build an object of the class they are given (copyreg's
# reconstructors, getattr(EnumClass, "RED")): the stand-in takes that class.
_BUILDERS = {"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"}


class _Opaque:
    """An object of a class that was named but not imported."""

    type_name: ClassVar[str] = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    # What else unpickling may do to an object: call it (cloudpickle builds
    # functions from the types it names), or fill it (subclasses of list
    # and dict get APPENDS and SETITEMS). Each does nothing.
    def __call__(self, *args: Any, **kwargs: Any) -> _Opaque:
        return type(self)()

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


_stand_ins: dict[str, type[_Opaque]] = {}


def _stand_in(name: str) -> type[_Opaque]:
    found = _stand_ins.get(name)
    if found is None:
        found = _stand_ins[name] = type(name, (_Opaque,), {"type_name": name})
    return found


class _Inert(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        reference = f"{module}.{name}"
        if reference in _BUILDERS or reference == "builtins.getattr":
            return _build_first
        return _stand_in(reference)

    def persistent_load(self, pid: Any) -> Any:
        return _stand_in(f"persistent id {pid!r}")()


def _build_first(*args: Any) -> Any:
    cls = args[0] if args else None
    if isinstance(cls, type) and issubclass(cls, _Opaque):
        return cls()
    return _stand_in("object")()


def _inert_loads(payload: bytes) -> Any:
    return _Inert(io.BytesIO(payload)).load()


def decode_for_summary(blob: bytes) -> Any:
    """The value in a codec blob, with pickled objects as inert stand-ins."""
    if blob[:1] == _SIGNED_TAG:
        blob = blob[1 + _MAC_SIZE :]
    if blob[:1] == _MSGPACK_TAG:
        return Codec().loads(blob)  # msgpack never runs code
    if blob[:1] == _PICKLE_TAG:
        return _inert_loads(blob[1:])
    raise ValueError(f"unknown format tag {blob[:1]!r}")


def describe(value: Any) -> str:
    """'list, 200 items', 'str, 41 chars', 'myapp.Config (pickled)'."""
    if isinstance(value, _Opaque):
        name = type(value).type_name
        if name.startswith("cloudpickle."):  # a lambda, closure or __main__ class
            return "function or class (pickled by value)"
        return f"{name} (pickled)"
    if isinstance(value, type) and issubclass(value, _Opaque):
        return f"class {value.type_name}"
    kind = type(value).__name__
    if isinstance(value, str):
        return f"str, {len(value)} chars"
    if isinstance(value, bytes | bytearray):
        return f"{kind}, {len(value)} bytes"
    if isinstance(value, list | tuple | set | frozenset | dict):
        return f"{kind}, {len(value)} item{'' if len(value) == 1 else 's'}"
    return kind


def _split(arguments: Any) -> list[tuple[str, Any]]:
    args, kwargs = arguments
    named = [(f"args[{i}]", value) for i, value in enumerate(args)]
    return named + [(str(name), value) for name, value in dict(kwargs).items()]


def summary(blob: bytes) -> list[tuple[str, str]]:
    """[(argument, type and size)] for a stored (args, kwargs) blob."""
    return [(name, describe(value)) for name, value in _split(decode_for_summary(blob))]


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 120
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 10


def values(blob: bytes, codec: Codec, execution_id: str) -> list[tuple[str, str]]:
    """[(argument, shortened repr)]: really decodes (and unpickles) the
    arguments, checking the signature when a secret key is set. Raises
    CorruptCheckpoint if they cannot be decoded; a value whose repr fails
    is shown as a note saying so."""
    arguments = codec.loads(blob, execution_id=execution_id, key="arguments")
    try:
        named = _split(arguments)
    except (TypeError, ValueError):
        raise CorruptCheckpoint(
            execution_id,
            "arguments",
            f"it holds a {type(arguments).__name__}, not the (args, kwargs) pair of a call",
            "the record was not written by resumable, or was changed since",
        ) from None
    return [(name, _shown(value)) for name, value in named]


def _shown(value: Any) -> str:
    try:
        return _repr.repr(value)
    except Exception as exc:  # the user's __repr__ may raise anything
        return f"<repr failed: {type(exc).__name__}>"


def size(blob: bytes) -> str:
    """'59 bytes', '4.1 kB' (rich's decimal units, as `ls -h --si`)."""
    return decimal(len(blob))
