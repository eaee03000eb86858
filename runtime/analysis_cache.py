"""A cache of the bytecode analysis that outlives the process, like `__pycache__`.

The abstract interpretation of a code object (`bytecode.CodeFacts`) and the
loop found at a call site (`loopsite.LoopSite`) are functions of the code
object alone, yet a fresh process that resumes an execution used to redo
them for the loop's function and every Python function it calls: most of
the time from `resume()` to the first new iteration. Their results are kept
here as plain JSON (`analysis_wire` turns them into data and back).

What makes a hit sound:

* The key is a digest of everything the analysis reads from a code object
  (bytecode, constants with nested code objects, names, locals, cells, the
  exception and line tables, flags, file and qualified name), under a
  directory named by a digest of the running interpreter (its full version
  and bytecode magic number) and of the analysis' own source files, so a
  new CPython or an edited or upgraded `resumable` starts an empty cache.
* Fail closed: an entry that is missing, unreadable, truncated, of another
  format, whose checksum or digest does not match, or whose data does not
  have the expected shape is a miss, and the code is analysed afresh.
  Nothing is unpickled: entries are JSON, checked field by field.
* Entries are written to a temporary file and renamed into place, so a
  reader never sees half an entry and processes writing the same entry at
  once each leave a whole one.
* A directory owned by another user, or writable by others, is not used.

Where it lives: `$RESUMABLE_CACHE_DIR/analysis/`, else the user's cache
directory (`$XDG_CACHE_HOME/resumable`, `~/.cache/resumable`;
`~/Library/Caches/resumable` on macOS; `%LOCALAPPDATA%\\resumable\\Cache` on
Windows). `RESUMABLE_ANALYSIS_CACHE=0` or `configure(analysis_cache=False)`
turns it off. Deleting the directory at any time is safe.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import stat
import sys
from types import CodeType
from typing import Any

from resumable._logs import get_logger

__all__ = ["code_digest", "configure", "directory", "read", "write"]

log = get_logger()

# Bump when the layout of an entry changes (analysis_wire's encoding).
FORMAT = 1
# The modules whose code decides what an analysis finds, or how it is
# written down: their source is part of the cache's version.
_ANALYSIS_MODULES = (
    "absval.py",
    "analysis_cache.py",
    "analysis_wire.py",
    "bytecode.py",
    "loopsite.py",
    "opcodes.py",
)
_OFF = frozenset({"0", "off", "false", "no"})
_MAGIC = b"resumable-analysis"

# configure(analysis_cache=...): None (the environment decides), False, True
# or a directory.
_setting: list[bool | str | None] = [None]
# The directory in use, once resolved ("": none can be used). Reset by
# configure().
_resolved: list[str | None] = [None]


def configure(setting: bool | str | os.PathLike[str] | None) -> None:
    """False: no cache; True: the default place; a path: that base directory."""
    _setting[0] = os.fspath(setting) if isinstance(setting, str | os.PathLike) else setting
    _resolved[0] = None


def directory() -> str | None:
    """Where this interpreter and this version of the analysis keep their
    entries, created if need be; None when the cache is off or unusable."""
    found = _resolved[0]
    if found is None:
        found = _resolved[0] = _resolve() or ""
    return found or None


def _resolve() -> str | None:
    # Strings and os.path, not pathlib: this runs on the way to the first
    # resume of every process.
    setting = _setting[0]
    if setting is False:
        return None
    if setting is None and os.environ.get("RESUMABLE_ANALYSIS_CACHE", "").lower() in _OFF:
        return None
    base = setting if isinstance(setting, str) else _base_directory()
    version = _VERSION
    if base is None or version is None:
        return None
    levels = [base, os.path.join(base, "analysis")]
    levels.append(os.path.join(levels[-1], version))
    problem = None
    try:
        for level in levels:
            if not os.path.isdir(level):
                os.makedirs(level, mode=0o700, exist_ok=True)
            # Every level we made or chose: whoever can rename one could
            # swap the entries under it.
            problem = problem or _unsafe(level)
    except OSError as exc:
        problem = f"it cannot be created ({type(exc).__name__})"
    if problem is not None:
        log.warning(
            "analysis cache not used",
            directory=levels[-1],
            reason=problem,
            action="every process analyses its loops afresh (slower resumes); "
            "RESUMABLE_ANALYSIS_CACHE=0 turns the cache off",
        )
        return None
    return levels[-1]


def _base_directory() -> str | None:
    configured = os.environ.get("RESUMABLE_CACHE_DIR")
    if configured:
        return configured
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return os.path.join(local, "resumable", "Cache") if local else None
    home = os.path.expanduser("~")
    if home == "~":  # no home directory to be found
        return None
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches", "resumable")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative path is to be ignored
        return os.path.join(xdg, "resumable")
    return os.path.join(home, ".cache", "resumable")


def _unsafe(path: str) -> str | None:
    """Why entries under `path` could have been written by someone else."""
    if os.name != "posix":
        return None
    info = os.stat(path)
    if info.st_uid != os.geteuid():
        return "it belongs to another user"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "others may write to it"
    return None


def _version() -> str | None:
    """The interpreter and the analysis' source, as a directory name. The
    source is known by each file's size and modification time, as Python
    itself decides whether a `__pycache__` file still holds the code it runs
    (so an edit, a `git checkout` or an upgrade starts a new directory)."""
    digest = hashlib.blake2b(digest_size=12)
    for part in (sys.version, sys.implementation.cache_tag or "", str(FORMAT)):
        digest.update(part.encode() + b"\0")
    digest.update(importlib.util.MAGIC_NUMBER)
    here = os.path.dirname(__file__)
    try:
        for name in _ANALYSIS_MODULES:
            info = os.stat(os.path.join(here, name))
            digest.update(f"{name}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    except OSError:
        return None  # no source to vouch for the analysis (a zip?): no cache
    return f"{sys.implementation.cache_tag}-{digest.hexdigest()}"


# Taken when the analysis modules are imported (together: `bytecode` imports
# this module), not when the cache is first used: a process whose source
# was edited or upgraded under it goes on running the code it imported, and
# must not file its results under the new code's version.
_VERSION = _version()


# -- keys ----------------------------------------------------------------------


def code_digest(code: CodeType) -> str | None:
    """A digest of everything the analysis may read from `code`, nested code
    objects included; None if it holds a constant of a type not handled here
    (then it is not cached)."""
    digest = hashlib.blake2b(digest_size=20)
    try:
        _feed_code(digest, code)
    except _Uncacheable:
        return None
    return digest.hexdigest()


class _Uncacheable(Exception):
    pass


def _feed(digest: Any, tag: bytes, data: bytes) -> None:
    # Tagged and length-prefixed: no two different inputs feed the same bytes.
    digest.update(tag + len(data).to_bytes(8, "little") + data)


def _feed_code(digest: Any, code: CodeType) -> None:
    _feed(digest, b"C", code.co_code)
    numbers = (
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_nlocals,
        code.co_stacksize,
        code.co_flags,
        code.co_firstlineno,
    )
    _feed(digest, b"N", repr(numbers).encode())
    for tag, names in (
        (b"n", code.co_names),
        (b"v", code.co_varnames),
        (b"c", code.co_cellvars),
        (b"f", code.co_freevars),
    ):
        _feed(digest, tag, "\0".join(names).encode("utf-8", "surrogatepass"))
    for tag, text in (
        (b"q", code.co_qualname),
        (b"m", code.co_name),
        (b"p", code.co_filename),
    ):
        _feed(digest, tag, text.encode("utf-8", "surrogatepass"))
    _feed(digest, b"x", code.co_exceptiontable)
    _feed(digest, b"l", code.co_linetable)
    _feed(digest, b"K", str(len(code.co_consts)).encode())
    for const in code.co_consts:
        _feed_const(digest, const)


def _feed_const(digest: Any, const: object) -> None:
    # Exact types only (a subclass could print or compare differently).
    kind = type(const)
    if isinstance(const, CodeType):
        _feed_code(digest, const)
    elif isinstance(const, frozenset) and kind is frozenset:
        # Its iteration order can differ between processes (hash
        # randomisation): the members are fed sorted by their own digests.
        parts = []
        for member in const:
            inner = hashlib.blake2b(digest_size=20)
            _feed_const(inner, member)
            parts.append(inner.digest())
        _feed(digest, b"S", b"".join(sorted(parts)))
    elif isinstance(const, tuple) and kind is tuple:
        _feed(digest, b"T", str(len(const)).encode())
        for member in const:
            _feed_const(digest, member)
    elif const is None or const is Ellipsis or kind in (bool, int, float, complex):
        # repr is exact for these (floats round-trip; -0.0 and nan differ).
        _feed(digest, kind.__name__.encode(), repr(const).encode())
    elif isinstance(const, str) and kind is str:
        _feed(digest, b"s", const.encode("utf-8", "surrogatepass"))
    elif isinstance(const, bytes) and kind is bytes:
        _feed(digest, b"b", const)
    elif isinstance(const, slice):  # 3.14+ fold constant slices (`x[1:2]`)
        _feed(digest, b"L", b"")
        for part in (const.start, const.stop, const.step):
            _feed_const(digest, part)
    else:
        raise _Uncacheable(kind.__name__)


# -- entries --------------------------------------------------------------------


def _path(code: CodeType, kind: str, detail: str) -> tuple[str, str] | None:
    folder = directory()
    if folder is None:
        return None
    digest = code_digest(code)
    if digest is None:
        return None
    key = f"{kind}-{digest}{'-' + detail if detail else ''}"
    return os.path.join(folder, key + ".json"), key


def read(code: CodeType, kind: str, detail: str = "") -> Any:
    """The data stored for (`code`, `kind`, `detail`), or None: missing,
    unreadable, damaged or written for something else."""
    found = _path(code, kind, detail)
    if found is None:
        return None
    path, key = found
    try:
        with open(path, "rb") as file:
            blob = file.read()
    except OSError:
        return None
    data = _unseal(blob, key)
    if data is None:
        log.debug("analysis cache entry ignored", entry=path, reason="damaged")
    return data


def write(code: CodeType, kind: str, detail: str, data: Any) -> None:
    """Store `data` (plain JSON data) for (`code`, `kind`, `detail`). Failing
    to write is not an error: the next process analyses afresh."""
    found = _path(code, kind, detail)
    if found is None:
        return
    path, key = found
    blob = _seal(data, key)
    import tempfile  # only a miss writes, and importing it costs ~8 ms

    try:
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(blob)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        log.debug("analysis cache entry not written", entry=path, error=type(exc).__name__)


def _seal(data: Any, key: str) -> bytes:
    """One header line (magic, format, key, checksum of the body), then the
    JSON body."""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    checksum = hashlib.blake2b(body, digest_size=16).hexdigest()
    return b"%s %d %s %s\n%s" % (_MAGIC, FORMAT, key.encode(), checksum.encode(), body)


def _unseal(blob: bytes, key: str) -> Any:
    header, newline, body = blob.partition(b"\n")
    if not newline:
        return None
    parts = header.split(b" ")
    if len(parts) != 4 or parts[0] != _MAGIC or parts[1] != str(FORMAT).encode():
        return None
    if parts[2] != key.encode():
        return None
    if parts[3] != hashlib.blake2b(body, digest_size=16).hexdigest().encode():
        return None
    try:
        return json.loads(body)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError included
        return None
