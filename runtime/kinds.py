"""What kind of thing a value is, for carrying: data, a resource, or neither.

* **Immutable** values (numbers, strings, tuples of them, dates...) cannot be
  changed in place; only rebinding changes what a local holds.
* **Resources** (clients, sessions, connections, files opened for appending,
  locks, loggers, progress bars, executors, event loops, tasks) are never
  pickled: the code before the loop rebuilds them on replay, and what the
  body does to them (a connection pool, a bar's count) is not part of the
  result. Known by class (looked up by module and name along the MRO, so
  nothing is imported to check), or by holding one of the stdlib's OS or
  event-loop handles.
* **Accumulators** are resources whose state *is* a result: a running hash,
  a compressor, a file opened for writing (the code before the loop
  truncates it again on replay), an iterator or generator the body advances,
  a queue. Changing one in the body is refused.
* **Views** hold no state of their own but write through to another object
  (a `csv.writer` writes to its file): the target is what changes.

Everything else is data, carried when the body may change it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime
import decimal
import fractions
import io
import ipaddress
import logging
import pathlib
import re
import selectors
import socket
import sqlite3
import ssl
import subprocess
import threading
import types
import uuid
from enum import Enum
from typing import Any

# Exact types whose instances cannot change in place (containers of them are
# checked item by item: a tuple holding a list can change).
ATOMS: frozenset[type] = frozenset(
    {
        type(None),
        bool,
        int,
        float,
        complex,
        str,
        bytes,
        range,
        slice,
        type(Ellipsis),
        type(NotImplemented),
        decimal.Decimal,
        fractions.Fraction,
        datetime.date,
        datetime.datetime,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        uuid.UUID,
        re.Pattern,
        re.Match,
        ipaddress.IPv4Address,
        ipaddress.IPv6Address,
        ipaddress.IPv4Network,
        ipaddress.IPv6Network,
        types.CodeType,
    }
)
_ATOM_BASES = (pathlib.PurePath, Enum)

# Code, not state: functions, classes and modules are rebuilt by importing;
# the body cannot meaningfully "carry" them. Changing one (a class attribute,
# a module global through its module) is state outside the frame.
CODE_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    type,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    staticmethod,
    classmethod,
    property,
)

# Containers whose items are reached plainly (subscript, iteration), so the
# depth of a value inside them means what it says.
TRANSPARENT: frozenset[type] = frozenset(
    {
        dict,
        list,
        tuple,
        set,
        frozenset,
        collections.deque,
        collections.Counter,
        collections.OrderedDict,
        collections.defaultdict,
    }
)


def is_atom(value: object) -> bool:
    kind = type(value)
    return kind in ATOMS or isinstance(value, _ATOM_BASES)


def is_code(value: object) -> bool:
    # @resumable functions and @step wrappers are code too.
    return isinstance(value, CODE_TYPES) or hasattr(type(value), "__resumable_function__")


# -- resources, by class ----------------------------------------------------------

# (module prefix, class names): a class anywhere in a value's MRO whose
# __module__ starts with the prefix and whose name is listed ("*": any class
# of that module) makes the value a resource. Third-party libraries are
# matched by name, never imported.
_RESOURCE_NAMES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (module, frozenset(names.split()))
    for module, names in (
        ("socket", "socket SocketType"),
        ("ssl", "SSLContext SSLSocket SSLObject"),
        (
            "asyncio",
            "AbstractEventLoop BaseEventLoop Future Task Lock Semaphore BoundedSemaphore "
            "Event Condition Barrier StreamReader StreamWriter BaseTransport Transport TaskGroup "
            "Timeout Runner Handle TimerHandle",
        ),
        ("_asyncio", "Future Task"),
        ("concurrent.futures", "Executor Future ThreadPoolExecutor ProcessPoolExecutor"),
        ("threading", "Thread Condition Semaphore BoundedSemaphore Event Barrier Timer _RLock"),
        ("_thread", "lock RLock _local"),
        ("multiprocessing", "*"),
        ("subprocess", "Popen"),
        ("selectors", "*"),
        ("sqlite3", "Connection Cursor Blob"),
        ("logging", "Logger LoggerAdapter Handler Manager PlaceHolder RootLogger"),
        ("structlog", "*"),
        ("contextlib", "ExitStack AsyncExitStack"),
        ("tempfile", "_TemporaryFileWrapper TemporaryDirectory SpooledTemporaryFile"),
        ("tqdm", "tqdm"),
        ("rich", "Progress Console Live Status"),
        (
            "httpx",
            "Client AsyncClient BaseClient HTTPTransport AsyncHTTPTransport BaseTransport "
            "AsyncBaseTransport MockTransport",
        ),
        ("httpcore", "*"),
        ("requests", "Session HTTPAdapter BaseAdapter"),
        ("urllib3", "PoolManager ProxyManager HTTPConnectionPool HTTPSConnectionPool"),
        ("aiohttp", "ClientSession BaseConnector TCPConnector UnixConnector"),
        (
            "openai",
            "OpenAI AsyncOpenAI AzureOpenAI AsyncAzureOpenAI SyncAPIClient AsyncAPIClient "
            "SyncAPIResource AsyncAPIResource",
        ),
        (
            "anthropic",
            "Anthropic AsyncAnthropic SyncAPIClient AsyncAPIClient SyncAPIResource "
            "AsyncAPIResource AnthropicBedrock AsyncAnthropicBedrock AnthropicVertex "
            "AsyncAnthropicVertex",
        ),
        ("google.genai", "Client"),
        ("mistralai", "Mistral"),
        ("cohere", "Client AsyncClient ClientV2 AsyncClientV2"),
        ("groq", "Groq AsyncGroq"),
        ("botocore", "BaseClient"),
        ("boto3", "Session ServiceResource"),
        ("aiobotocore", "*"),
        ("redis", "Redis StrictRedis ConnectionPool Connection"),
        ("valkey", "Valkey ConnectionPool Connection"),
        ("asyncpg", "Connection Pool"),
        (
            "psycopg",
            "Connection AsyncConnection Cursor AsyncCursor ConnectionPool AsyncConnectionPool",
        ),
        ("psycopg2", "connection cursor"),
        ("pymongo", "MongoClient"),
        ("motor", "*"),
        ("sqlalchemy", "Engine Connection Session AsyncEngine AsyncSession AsyncConnection"),
        ("elasticsearch", "Elasticsearch AsyncElasticsearch"),
        ("grpc", "Channel"),
        ("websockets", "*"),
        ("aiofiles", "*"),
        ("anyio", "*"),
        ("trio", "*"),
        ("aiokafka", "AIOKafkaProducer AIOKafkaConsumer"),
        ("kafka", "KafkaProducer KafkaConsumer"),
        ("tenacity", "Retrying AsyncRetrying BaseRetrying"),
        ("aiolimiter", "*"),
        ("resumable", "SQLiteStore MemoryStore RedisStore"),
    )
)

# Accumulators: resources whose state is a result. Changing one is refused.
_ACCUMULATOR_NAMES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (module, frozenset(names.split()))
    for module, names in (
        ("_hashlib", "HASH HASHXOF HMAC"),
        ("hashlib", "*"),
        ("_blake2", "blake2b blake2s"),
        ("_sha1", "sha1"),
        ("_sha2", "sha224 sha256 sha384 sha512"),
        ("_sha256", "sha224 sha256"),
        ("_sha512", "sha384 sha512"),
        ("_sha3", "*"),
        ("_md5", "md5"),
        ("hmac", "HMAC"),
        ("zlib", "Compress Decompress _ZlibDecompressor"),
        ("_bz2", "BZ2Compressor BZ2Decompressor"),
        ("_lzma", "LZMACompressor LZMADecompressor"),
        ("_zstd", "*"),
        ("compression.zstd", "*"),
        ("queue", "Queue LifoQueue PriorityQueue SimpleQueue"),
        ("_queue", "SimpleQueue"),
        ("asyncio", "Queue LifoQueue PriorityQueue"),
        ("xxhash", "*"),
    )
)

# Views: they write through to the object they wrap.
_VIEW_NAMES: tuple[tuple[str, frozenset[str]], ...] = (
    ("_csv", frozenset({"writer", "Writer"})),
    ("csv", frozenset({"DictWriter"})),
)

_STDLIB_HANDLES: tuple[type, ...] = (
    socket.socket,
    ssl.SSLContext,
    ssl.SSLSocket,
    ssl.SSLObject,
    asyncio.AbstractEventLoop,
    asyncio.Future,
    asyncio.BaseTransport,
    concurrent.futures.Executor,
    concurrent.futures.Future,
    subprocess.Popen,
    selectors.BaseSelector,
    sqlite3.Connection,
    sqlite3.Cursor,
    logging.Logger,
    logging.Handler,
    threading.Thread,
    type(threading.Lock()),
    type(threading.RLock()),
)


def _matches(kind: type, table: tuple[tuple[str, frozenset[str]], ...]) -> bool:
    for base in kind.__mro__:
        module = getattr(base, "__module__", "") or ""
        name = base.__name__
        for prefix, names in table:
            if (module == prefix or module.startswith(prefix + ".")) and (
                "*" in names or name in names
            ):
                return True
    return False


_classified: dict[type, str] = {}

RESOURCE = "resource"
ACCUMULATOR = "accumulator"
VIEW = "view"
FILE = "file"
ITERATOR = "iterator"
OTHER = "other"


def by_class(value: object) -> str:
    """The kind a value's class alone decides (cached per class): RESOURCE,
    ACCUMULATOR, VIEW, FILE (decided by its mode), ITERATOR, or OTHER."""
    return by_class_type(type(value))


def by_class_type(kind: type) -> str:
    found = _classified.get(kind)
    if found is None:
        found = _classify_class(kind)
        _classified[kind] = found
    return found


def _classify_class(kind: type) -> str:
    if issubclass(kind, (io.StringIO, io.BytesIO)):
        return OTHER  # in-memory buffers are data: they pickle with their position
    if issubclass(kind, io.IOBase):
        return FILE
    if _matches(kind, _ACCUMULATOR_NAMES):
        return ACCUMULATOR
    if _matches(kind, _VIEW_NAMES):
        return VIEW
    if issubclass(kind, _STDLIB_HANDLES) or _matches(kind, _RESOURCE_NAMES):
        return RESOURCE
    if issubclass(kind, (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)):
        return ITERATOR
    if _is_iterator_class(kind) and kind not in TRANSPARENT:
        return ITERATOR
    return OTHER


def _is_iterator_class(kind: type) -> bool:
    return hasattr(kind, "__next__") or hasattr(kind, "__anext__")


def in_memory_database(value: Any) -> bool:
    """A SQLite connection to ":memory:" (or a temporary database): its tables
    live only in this process."""
    if not isinstance(value, sqlite3.Connection):
        return False
    try:
        rows = value.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error:
        return False
    return any(row[1] == "main" and not row[2] for row in rows)


def file_mode(value: Any) -> str:
    """The mode a file object was opened with ('' when it does not say)."""
    mode = getattr(value, "mode", "")
    return mode if isinstance(mode, str) else ""


def truncating(value: object) -> bool:
    """A file the code before the loop would empty again on replay."""
    mode = file_mode(value)
    return "w" in mode or ("+" in mode and "a" not in mode and "r" not in mode)


def describe_type(value: object) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"
