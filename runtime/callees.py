"""What a call does to its arguments, for callees the analysis knows.

`resolve` finds the object a call site's path names (without running any of
the user's code: `inspect.getattr_static`), and `builtin_effect` says what a
known callable does to the argument at a position: only reads it, iterates
it (which consumes an iterator), changes it, or stores it into another
argument. Python functions are not in these tables: `effects` analyses their
bytecode instead. Anything unknown is assumed to change what it is given.
"""

from __future__ import annotations

import builtins
import collections
import functools
import inspect
import types
from typing import Any

READS = "reads"  # looks at the argument, keeps nothing of it
ITERATES = "iterates"  # iterates it: consumes an iterator, reads a collection
CHANGES = "changes"  # changes the argument itself (heappush, list.append's self)
STORED = "stored"  # keeps a reference to it inside the receiver (list.append's item)
UNKNOWN = "unknown"

# What a call's result may hold of its arguments.
FRESH = "fresh"  # nothing: a new number, string, bool, response...
ELEMENTS = "elements"  # their items: sorted(xs), dict.get(k), max(xs)

_MISSING = object()


def resolve(
    path: tuple[str, ...] | None, frame_globals: dict[str, Any], frame_locals: dict[str, Any]
) -> Any:
    """The object at `path` (("G", "json", "dumps"), ("L", "client", "post")),
    or _MISSING. Attributes are looked up statically: no property or
    __getattr__ of the user's runs."""
    if path is None or len(path) < 2:
        return _MISSING
    kind, name, *attrs = path
    if kind == "G":
        value = frame_globals.get(name, _MISSING)
        if value is _MISSING:
            value = getattr(builtins, name, _MISSING)
    elif kind == "L":
        value = frame_locals.get(name, _MISSING)
    else:
        return _MISSING
    for attr in attrs:
        if value is _MISSING:
            return _MISSING
        value = static_attr(value, attr)
    return value


_BUILTIN_CONTAINERS = frozenset(
    {list, dict, set, frozenset, tuple, str, bytes, bytearray, collections.deque}
)


def static_attr(owner: Any, name: str) -> Any:
    found = _MISSING
    kind = type(owner)
    if not name.startswith("__"):
        # Fast paths on the per-checkpoint path of `carry.still_valid`: a
        # module's names are its __dict__ (ModuleType's own descriptors are
        # dunder names), and a builtin container's methods are its type's.
        if kind is types.ModuleType:
            found = owner.__dict__.get(name, _MISSING)
        elif kind in _BUILTIN_CONTAINERS:
            found = kind.__dict__.get(name, _MISSING)
    if found is _MISSING:
        try:
            found = inspect.getattr_static(owner, name)
        except AttributeError:
            return _MISSING
    if isinstance(found, staticmethod | classmethod):
        return found.__func__
    if isinstance(found, property):
        return _MISSING  # its value depends on running its getter
    return found


def missing(value: object) -> bool:
    return value is _MISSING


def unwrap(callee: Any) -> tuple[Any, int]:
    """The function a callable runs, and how many leading arguments it adds
    (a bound method's self, a partial's arguments)."""
    added = 0
    for _ in range(8):
        if isinstance(callee, types.MethodType):
            callee, added = callee.__func__, added + 1
        elif isinstance(callee, functools.partial):
            added += len(callee.args)
            callee = callee.func
        elif hasattr(callee, "__resumable_function__"):  # @step, @resumable wrappers
            callee = callee.__resumable_function__
        else:
            break
    return callee, added


# -- builtin functions ------------------------------------------------------------

_READING_BUILTINS = frozenset(
    "abs ascii bin bool callable chr complex divmod float format getattr hasattr hash hex id "
    "int isinstance issubclass len oct ord pow print repr round slice str type vars range "
    "setattr delattr memoryview object super property staticmethod classmethod".split()
)
_ITERATING_BUILTINS = frozenset(
    "all any bytes bytearray dict enumerate filter frozenset iter list map max min reversed "
    "set sorted sum tuple zip aiter".split()
)
_CHANGING_BUILTINS = {"next": (0,), "anext": (0,), "setattr": (0,), "delattr": (0,)}

# Module-level functions known to only read (or iterate) their arguments, by
# module. Anything else from these modules is unknown.
_READING_FUNCTIONS: dict[str, frozenset[str]] = {
    module: frozenset(names.split())
    for module, names in {
        "json": "dumps loads JSONEncoder JSONDecoder",
        "copy": "copy deepcopy",
        "math": "*",
        "cmath": "*",
        "statistics": "*",
        "operator": "* -setitem -delitem -iadd -iand -iconcat -ifloordiv -ilshift -imod -imul "
        "-imatmul -ior -ipow -irshift -isub -itruediv -ixor",
        "bisect": "bisect bisect_left bisect_right",
        "heapq": "nlargest nsmallest merge",
        "re": "match fullmatch search sub subn split findall finditer compile escape",
        "textwrap": "*",
        "base64": "*",
        "binascii": "*",
        "struct": "pack unpack calcsize iter_unpack",
        "hashlib": "new md5 sha1 sha224 sha256 sha384 sha512 blake2b blake2s sha3_256 sha3_512 "
        "file_digest",
        "hmac": "new compare_digest digest",
        "zlib": "compress decompress crc32 adler32",
        "time": "*",
        "datetime": "*",
        "uuid": "*",
        "unicodedata": "*",
        "html": "escape unescape",
        "urllib.parse": "*",
        "shlex": "quote split join",
        "string": "*",
        "itertools": "*",
        "functools": "reduce partial cmp_to_key",
        "dataclasses": "asdict astuple fields replace is_dataclass",
        "asyncio": "sleep gather wait wait_for create_task ensure_future shield timeout "
        "as_completed to_thread",
        "random": "random randint randrange choice choices sample uniform gauss seed",
        "pprint": "pformat pprint",
        "collections": "Counter OrderedDict defaultdict deque namedtuple ChainMap",
        "typing": "*",
        "enum": "*",
        "decimal": "Decimal",
        "fractions": "Fraction",
        "pathlib": "Path PurePath",
        "os.path": "*",
        "posixpath": "*",
        "logging": "getLogger",
        "numpy": "* -copyto -put -place -putmask -fill_diagonal -shuffle -put_along_axis",
        "pandas": "* -eval",
        "pydantic": "*",
        "pydantic_core": "*",
        "resumable": "aiter_checkpointed agather now uuid4 random sleep current",
    }.items()
}
# Iterating, among the reading functions above (an iterator argument is consumed).
_ITERATING_FUNCTIONS: dict[str, frozenset[str]] = {
    "itertools": frozenset({"*"}),
    "heapq": frozenset({"nlargest", "nsmallest", "merge"}),
    "functools": frozenset({"reduce"}),
    "statistics": frozenset({"*"}),
    "math": frozenset({"fsum", "prod"}),
    "asyncio": frozenset({"gather", "wait", "as_completed"}),
    "collections": frozenset({"*"}),
    "random": frozenset({"choice", "choices", "sample"}),
    "numpy": frozenset({"*"}),
    "pandas": frozenset({"*"}),
    "resumable": frozenset({"aiter_checkpointed", "agather"}),
}
# Known to change an argument: module -> {function: positions}.
_CHANGING_FUNCTIONS: dict[str, dict[str, tuple[int, ...]]] = {
    "heapq": dict.fromkeys(
        "heappush heappop heapify heapreplace heappushpop heappush_max heappop_max "
        "heapify_max heapreplace_max heappushpop_max".split(),
        (0,),
    ),
    "bisect": {"insort": (0,), "insort_left": (0,), "insort_right": (0,)},
    "random": {"shuffle": (0,)},
    "json": {"dump": (1,), "load": (0,)},
    "pickle": {"dump": (1,), "load": (0,)},
    "operator": {"setitem": (0,), "delitem": (0,)},
}


def _module_of(callee: Any) -> str:
    module = getattr(callee, "__module__", None)
    if not isinstance(module, str):
        owner = getattr(callee, "__self__", None)  # a C function bound to its module
        if isinstance(owner, types.ModuleType):
            module = owner.__name__
        else:  # numpy's ufuncs have no __module__; their class does
            module = getattr(type(callee), "__module__", "")
    return module or ""


def _listed(table: dict[str, frozenset[str]], module: str, name: str) -> bool:
    for prefix, names in table.items():
        # "_json" is json's C accelerator, "numpy._core.numeric" is numpy.
        if module in (prefix, "_" + prefix) or module.startswith(prefix + "."):
            if "-" + name in names:
                return False
            if "*" in names or name in names:
                return True
    return False


def builtin_effect(callee: Any, position: int, kwargs: frozenset[str]) -> str:
    """What calling `callee` (not a Python function) does to the argument at
    `position` (-1: a keyword argument)."""
    name = getattr(callee, "__name__", None)
    if not isinstance(name, str):
        return UNKNOWN
    if getattr(builtins, name, None) is callee:
        if name in _CHANGING_BUILTINS and position in _CHANGING_BUILTINS[name]:
            return CHANGES
        if name in _ITERATING_BUILTINS:
            return ITERATES
        if name in _READING_BUILTINS or name in _CHANGING_BUILTINS:
            return READS
        return UNKNOWN
    module = _module_of(callee)
    if "out" in kwargs or "inplace" in kwargs:
        return UNKNOWN  # numpy's out=, pandas' inplace=
    for prefix, functions in _CHANGING_FUNCTIONS.items():
        if (module == prefix or module == "_" + prefix) and name in functions:
            return CHANGES if position in functions[name] else READS
    if _listed(_READING_FUNCTIONS, module, name):
        return ITERATES if _listed(_ITERATING_FUNCTIONS, module, name) else READS
    return UNKNOWN


_FRESH_BUILTINS = frozenset(
    "abs all any ascii bin bool callable chr complex divmod float format hash hex id int "
    "isinstance issubclass len oct ord pow repr round str sum type bytes range hasattr".split()
)
_ELEMENT_BUILTINS = frozenset(
    "sorted list tuple set frozenset dict max min reversed enumerate zip filter iter next".split()
)
_FRESH_FUNCTIONS: dict[str, frozenset[str]] = {
    module: frozenset(names.split())
    for module, names in {
        "json": "dumps loads",
        "math": "*",
        "statistics": "*",
        "time": "*",
        "datetime": "*",
        "uuid": "*",
        "textwrap": "*",
        "base64": "*",
        "binascii": "*",
        "struct": "*",
        "unicodedata": "*",
        "html": "escape unescape",
        "urllib.parse": "*",
        "shlex": "*",
        "hashlib": "*",
        "hmac": "*",
        "zlib": "*",
        "re": "match fullmatch search sub subn split findall escape",
        "copy": "deepcopy",
        "os.path": "*",
        "posixpath": "*",
        "random": "random randint randrange uniform gauss",
        "asyncio": "sleep",
    }.items()
}
_ELEMENT_FUNCTIONS: dict[str, frozenset[str]] = {
    "copy": frozenset({"copy"}),
    "heapq": frozenset({"heappop", "heappushpop", "heapreplace", "nlargest", "nsmallest"}),
    "random": frozenset({"choice", "choices", "sample"}),
    "bisect": frozenset(),
}


def builtin_returns(callee: Any) -> str | None:
    """FRESH, ELEMENTS, or None (unknown) for a callable that is not a Python
    function."""
    name = getattr(callee, "__name__", None)
    if not isinstance(name, str):
        return None
    if getattr(builtins, name, None) is callee:
        if name in _FRESH_BUILTINS:
            return FRESH
        if name in _ELEMENT_BUILTINS:
            return ELEMENTS
        return None
    module = _module_of(callee)
    if _listed(_FRESH_FUNCTIONS, module, name):
        return FRESH
    if _listed(_ELEMENT_FUNCTIONS, module, name):
        return ELEMENTS
    return None


_ELEMENT_METHODS = frozenset(
    "get pop popitem setdefault popleft copy values keys items most_common elements "
    "__getitem__ union intersection difference symmetric_difference".split()
)


def container_returns(kind: type, name: str) -> str | None:
    """What a builtin container's method returns of the container: its items
    (get, pop, copy...), or nothing (count, index, append...)."""
    if container_method(kind, name) is None:
        return None
    return ELEMENTS if name in _ELEMENT_METHODS else FRESH


# -- methods of builtin containers -------------------------------------------------

# Methods that change their receiver; other methods of these types only read it.
# Arguments of the "storing" ones end up inside the receiver.
_CHANGING_METHODS: dict[type, frozenset[str]] = {
    list: frozenset(
        "append extend insert pop remove clear sort reverse __setitem__ "
        "__delitem__ __iadd__ __imul__".split()
    ),
    dict: frozenset("setdefault update pop popitem clear __setitem__ __delitem__ __ior__".split()),
    set: frozenset(
        "add discard remove pop clear update difference_update intersection_update "
        "symmetric_difference_update __ior__ __iand__ __isub__ __ixor__".split()
    ),
    bytearray: frozenset(
        "append extend insert pop remove clear reverse __setitem__ __delitem__ "
        "__iadd__ __imul__".split()
    ),
    collections.deque: frozenset(
        "append appendleft extend extendleft pop popleft remove rotate "
        "clear insert reverse __setitem__ __delitem__ __iadd__".split()
    ),
    collections.Counter: frozenset(
        "update subtract clear setdefault pop popitem __setitem__ __delitem__ __missing__".split()
    ),
    collections.OrderedDict: frozenset(
        "move_to_end popitem pop setdefault update clear __setitem__ __delitem__".split()
    ),
    collections.defaultdict: frozenset(
        "setdefault update pop popitem clear __setitem__ "
        "__delitem__ __missing__ __getitem__".split()
    ),
}
_STORING_METHODS = frozenset(
    "append extend insert setdefault update add appendleft extendleft __setitem__ __ior__ "
    "__iadd__".split()
)
_ITERATING_METHODS = frozenset(
    "extend update extendleft difference_update intersection_update "
    "symmetric_difference_update union intersection difference "
    "symmetric_difference issubset issuperset isdisjoint __ior__ "
    "__iadd__ join".split()
)
_IMMUTABLE_BUILTINS = (str, bytes, int, float, complex, tuple, frozenset, bool, range)


def container_method(kind: type, name: str) -> tuple[str, str] | None:
    """(what it does to its receiver, to its other arguments) for a method of
    a builtin container type (or a subclass that does not override it);
    None when `kind` is not one or the method is overridden in Python."""
    for base in kind.__mro__:
        if base in _CHANGING_METHODS:
            found = inspect.getattr_static(kind, name, None)
            if found is None or isinstance(found, types.FunctionType):
                if base not in (collections.Counter, collections.OrderedDict):
                    return None  # overridden by a Python method: analyse it
                if isinstance(found, types.FunctionType) and name not in _CHANGING_METHODS[base]:
                    return None
            receiver = CHANGES if name in _CHANGING_METHODS[base] else READS
            if name in _STORING_METHODS:
                others = STORED if name not in ("extend", "update", "extendleft") else ITERATES
            elif name in _ITERATING_METHODS:
                others = ITERATES
            else:
                others = READS
            return receiver, others
        if base in _IMMUTABLE_BUILTINS:
            found = inspect.getattr_static(kind, name, None)
            if isinstance(found, types.FunctionType):
                return None
            return READS, ITERATES if name in _ITERATING_METHODS else READS
    return None


def library_method(kind: type, name: str, kwargs: frozenset[str]) -> tuple[str, str] | None:
    """Methods of well-known libraries' value types (numpy arrays, pandas
    frames, pydantic models) that only read their receiver and arguments."""
    module = getattr(kind, "__module__", "") or ""
    if "inplace" in kwargs or "out" in kwargs:
        return None
    if module.startswith("numpy"):
        if name in _NUMPY_CHANGING:
            return CHANGES, READS
        return READS, READS
    if module.startswith("pandas"):
        if name in _PANDAS_CHANGING:
            return CHANGES, READS
        return READS, READS
    pydantic = any(base.__module__.startswith("pydantic") for base in kind.__mro__[1:-1])
    if pydantic and (name.startswith("model_") or name in ("dict", "json", "copy")):
        return READS, READS
    return None


_NUMPY_CHANGING = frozenset(
    "sort fill resize put itemset setfield setflags partition byteswap "
    "__setitem__ __delitem__ __iadd__ __isub__ __imul__ __itruediv__ "
    "__ifloordiv__ __imod__ __ipow__ __iand__ __ior__ __ixor__".split()
)
_PANDAS_CHANGING = frozenset(
    "insert pop update __setitem__ __delitem__ set_axis "
    "__iadd__ __isub__ __imul__ __itruediv__".split()
)
