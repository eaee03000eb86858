"""The Lua of RedisStore, and how an ExecutionRecord lives in a Redis hash.

Keys of one execution share the hash tag ``{<prefix>:<id>}``, so every script
below touches a single Redis Cluster slot: ``{p:id}:record`` (a hash of the
ExecutionRecord's fields) and ``{p:id}:checkpoints`` (a hash of checkpoint
key -> bytes). Each script is one atomic step on the server: the fencing check
and the changes it guards cannot be separated by another client's command.

What goes on the wire is kept short, because a checkpointed loop calls WRITE
once per iteration (README, "Benchmarks": bytes on the wire against the payload). The
scripts are one Functions library (`LIBRARY`), called by a 9-character name
(`FCALL`); a server without Functions gets them by SHA-1 (`EVALSHA`, see
`_redis_link`). Every script takes one key, the hash tag ``{p:id}`` itself,
and derives both key names from it (same slot, so Redis Cluster accepts the
access). A fenced script takes its lease as one short value, `fence_arg`: 8
bytes of SHA-1 of the owner (not the owner's text), then the token as
digits. The token alone is not enough: an execution that is deleted and
created again starts over at token 1, and the digest tells the first life's
owner from the second one's, as the owner's text did (two owners' digests
agree with probability 2**-64). WRITE takes everything in one MessagePack
argument (`write_args`). The stored layout is the one earlier versions wrote
and read.

Lease state (owner, lease_token, lease_expires_at) lives in the record hash
and only these scripts change it. Times come from the server's TIME, never
from the clients: every lease decision of every process on every machine is
then made by one clock, so a client whose clock runs fast cannot take a live
lease early. Times are stored as "%.17g" strings, which round-trip a double
exactly, and scripts return the string they stored: the `Lease` a client gets
holds exactly the value that `get` reads back.

A fencing failure is an error reply, ``RESUMABLE_LEASE_LOST <state> <expires>
<now> <owner in hex>`` (state 0: no record, 1: another owner, 2: released),
so that one failed script in a pipeline leaves the others' replies intact.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Collection, Iterable, Mapping

import msgpack

from resumable.stores.base import ExecutionRecord, Lease

LEASE_LOST = "RESUMABLE_LEASE_LOST"
# Bytes of SHA-1(owner) in a fence argument.
OWNER_DIGEST = 8

# Helpers a script may call; each script gets only those it uses (defining a
# Lua function costs a little at every call: ~3 µs of a ~10 µs write).
_HELPERS: dict[str, str] = {
    "now": """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end""",
    "fmt": """
local function fmt(x) return string.format('%.17g', x) end""",
    "hex": """
local function hex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end""",
    # `lease` is a fence argument (see fence_arg): 8 bytes of SHA-1 of the
    # owner, the token's digits, then for WRITE maybe '/' and a count.
    "fence": """
local function fence(rec, lease)
  local token = string.match(lease, '^%d+', 9)
  local cur = redis.call('HMGET', rec, 'lease_token', 'owner', 'lease_expires_at')
  if not cur[1] then
    return redis.error_reply('RESUMABLE_LEASE_LOST 0 0 0 -')
  end
  if cur[1] ~= token or not cur[2]
      or string.sub(redis.sha1hex(cur[2]), 1, 16) ~= hex(string.sub(lease, 1, 8)) then
    local state = cur[2] and '1 ' or '2 '
    return redis.error_reply('RESUMABLE_LEASE_LOST ' .. state .. cur[3] .. ' ' .. fmt(now())
      .. ' ' .. (cur[2] and hex(cur[2]) or '-'))
  end
  return nil
end""",
    # Lua's C stack holds ~8000 values: unpack() long argument lists in chunks.
    "chunked": """
local function chunked(command, key, list, first, last, step)
  local i = first
  while i <= last do
    local j = math.min(i + step - 1, last)
    redis.call(command, key, unpack(list, i, j))
    i = j + 1
  end
end""",
}
# What each helper calls itself.
_NEEDS = {"fence": ("now", "fmt", "hex")}

# Every script: KEYS[1] is the execution's hash tag, {<prefix>:<id>}.

# ARGV: ttl, token, nonce, owner, field, value, ...
# Returns {1, expires} for a new lease (or for our own retried call: the
# nonce matches), {0} when the id exists.
CREATE = """
local rec = KEYS[1] .. ':record'
if redis.call('EXISTS', rec) == 1 then
  local mine = redis.call('HMGET', rec, 'lease_nonce', 'lease_expires_at')
  if mine[1] == ARGV[3] then return {1, mine[2]} end
  return {0}
end
local t = now()
local expires = fmt(t + tonumber(ARGV[1]))
redis.call('DEL', KEYS[1] .. ':checkpoints')
redis.call('HSET', rec, 'owner', ARGV[4], 'lease_token', ARGV[2], 'lease_expires_at', expires,
  'updated_at', fmt(t), 'lease_nonce', ARGV[3], unpack(ARGV, 5))
return {1, expires}
"""

# ARGV: owner, ttl, steal token or '', nonce.
# Returns {1, token, expires}, {0, owner, expires, now} (locked), or {-1}.
ACQUIRE = """
local rec = KEYS[1] .. ':record'
local cur = redis.call('HMGET', rec, 'lease_token', 'owner', 'lease_expires_at', 'lease_nonce')
if not cur[1] then return {-1} end
if cur[4] == ARGV[4] and cur[2] == ARGV[1] then return {1, cur[1], cur[3]} end
local t = now()
if cur[2] and tonumber(cur[3]) > t and ARGV[3] ~= cur[1] then
  return {0, cur[2], cur[3], fmt(t)}
end
local token = string.format('%d', tonumber(cur[1]) + 1)
local expires = fmt(t + tonumber(ARGV[2]))
redis.call('HSET', rec, 'owner', ARGV[1], 'lease_token', token, 'lease_expires_at', expires,
  'updated_at', fmt(t), 'lease_nonce', ARGV[4])
return {1, token, expires}
"""

# ARGV: fence, ttl. Returns the new expiry.
RENEW = """
local rec = KEYS[1] .. ':record'
local lost = fence(rec, ARGV[1])
if lost then return lost end
local t = now()
local expires = fmt(t + tonumber(ARGV[2]))
redis.call('HSET', rec, 'lease_expires_at', expires, 'updated_at', fmt(t))
return expires
"""

# ARGV: fence. Releasing a released lease (same token, no owner) does nothing.
RELEASE = """
local rec = KEYS[1] .. ':record'
local cur = redis.call('HMGET', rec, 'lease_token', 'owner')
if cur[1] == string.match(ARGV[1], '^%d+', 9) and not cur[2] then return 0 end
local lost = fence(rec, ARGV[1])
if lost then return lost end
redis.call('HDEL', rec, 'owner')
redis.call('HSET', rec, 'lease_expires_at', '0', 'updated_at', fmt(now()))
return 1
"""

# ARGV: one MessagePack array (see write_args): the fence, the deleted keys,
# the deleted spans of numbered keys (prefix, first, last, ...), then key,
# value pairs. Deletes go first, so a key both deleted and put ends up put.
WRITE = """
local w = cmsgpack.unpack(ARGV[1])
local lost = fence(KEYS[1] .. ':record', w[1])
if lost then return lost end
local cps = KEYS[1] .. ':checkpoints'
chunked('HDEL', cps, w[2], 1, #w[2], 1000)
local spans = w[3]
for s = 1, #spans, 3 do
  local names = {}
  for n = spans[s + 1], spans[s + 2] do
    names[#names + 1] = spans[s] .. string.format('%d', n)
    if #names == 1000 then
      redis.call('HDEL', cps, unpack(names))
      names = {}
    end
  end
  if #names > 0 then redis.call('HDEL', cps, unpack(names)) end
end
chunked('HSET', cps, w, 4, #w, 2000)
return 1
"""

# ARGV: fence, clear ('1' or '0'), n, n checkpoint key/value pairs to put
# after clearing, field, value, ... Returns the whole record hash.
UPDATE = """
local rec = KEYS[1] .. ':record'
local lost = fence(rec, ARGV[1])
if lost then return lost end
local puts = tonumber(ARGV[3])
redis.call('HSET', rec, 'updated_at', fmt(now()), unpack(ARGV, 4 + 2 * puts))
if ARGV[2] == '1' then redis.call('DEL', KEYS[1] .. ':checkpoints') end
if puts > 0 then chunked('HSET', KEYS[1] .. ':checkpoints', ARGV, 4, 3 + 2 * puts, 1000) end
return redis.call('HGETALL', rec)
"""

# Returns 1, or 0 for an unknown id (which stays unknown).
REQUEST_CANCEL = """
local rec = KEYS[1] .. ':record'
if redis.call('EXISTS', rec) == 0 then return 0 end
redis.call('HSET', rec, 'cancel_requested', '1', 'updated_at', fmt(now()))
return 1
"""

# Returns 1 if the record existed.
DELETE = """
local found = redis.call('DEL', KEYS[1] .. ':record')
redis.call('DEL', KEYS[1] .. ':checkpoints')
return found
"""


# KEYS: checkpoints. ARGV: cursor, count. One HSCAN step, filtered on the
# server (the rule of Store.load_headers: no '+' or '=' in the key, no
# 'memo:' prefix), so only header records cross the network. Returns
# {next cursor, key, value, ...}; cursor '0' again: the scan is over. Each
# call is short (about `count` fields), so the server never blocks long on a
# big execution, as HKEYS or HGETALL of a million items would.
HEADERS = """
local found = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local page = found[2]
local out = {found[1]}
for i = 1, #page, 2 do
  local key = page[i]
  if string.sub(key, 1, 5) ~= 'memo:' and not string.find(key, '[+=]') then
    out[#out + 1] = key
    out[#out + 1] = page[i + 1]
  end
end
return out
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str  # for EVAL/SCRIPT LOAD: the body and the helpers it uses
    sha: str
    function: str  # its name in LIBRARY

    def head(self, functions: bool) -> tuple[str, str]:
        """The command that runs it, before the key count: by function name
        (9 bytes on the wire) where the server has Functions, else by SHA-1
        (40 bytes)."""
        return ("FCALL", self.function) if functions else ("EVALSHA", self.sha)


# One letter per script, for its function name.
_LETTERS = {
    "create": "c",
    "acquire": "a",
    "renew": "n",
    "release": "l",
    "write": "w",
    "update": "u",
    "request_cancel": "x",
    "delete": "d",
    "headers": "h",
}
_BODIES = {
    "create": CREATE,
    "acquire": ACQUIRE,
    "renew": RENEW,
    "release": RELEASE,
    "write": WRITE,
    "update": UPDATE,
    "request_cancel": REQUEST_CANCEL,
    "delete": DELETE,
    "headers": HEADERS,
}


def _used_helpers(body: str) -> str:
    used = {helper for helper in _HELPERS if f"{helper}(" in body}
    used |= {need for helper in used for need in _NEEDS.get(helper, ())}
    return "".join(code for helper, code in _HELPERS.items() if helper in used)


def _library() -> tuple[str, str]:
    """The scripts as one Redis Functions library (Redis 7+, Valkey): its
    source, and the digest of the code that names it and its functions.
    Function names are global to a server, so they carry the digest: the
    processes of two releases sharing a server each call their own."""
    helpers = _used_helpers("".join(_BODIES.values()))
    digest = hashlib.sha1((helpers + "".join(_BODIES.values())).encode()).hexdigest()[:7]  # noqa: S324 (a name, not security)
    source = f"#!lua name=resumable_{digest}\n{helpers}\n" + "".join(
        f"redis.register_function('r{digest}{_LETTERS[name]}', function(KEYS, ARGV)\n{body}end)\n"
        for name, body in _BODIES.items()
    )
    return source, digest


LIBRARY, _DIGEST = _library()

SCRIPTS: dict[str, Script] = {
    name: Script(
        name,
        _used_helpers(body) + body,
        hashlib.sha1((_used_helpers(body) + body).encode()).hexdigest(),  # noqa: S324 (Redis names scripts by SHA-1)
        f"r{_DIGEST}{_LETTERS[name]}",
    )
    for name, body in _BODIES.items()
}


# -- records as hashes ----------------------------------------------------------

_FLOATS = frozenset({"created_at", "updated_at", "started_at", "finished_at", "lease_expires_at"})
_INTS = frozenset({"lease_token", "attempts", "format"})
_BLOBS = frozenset({"args", "result", "error"})
_FIELDS = tuple(f.name for f in dataclasses.fields(ExecutionRecord))
# Fields the scripts set themselves when a lease is taken.
_LEASE_FIELDS = frozenset({"owner", "lease_token", "lease_expires_at", "updated_at"})


def encode_value(name: str, value: object) -> bytes:
    """One field as stored: text as UTF-8, numbers as text that round-trips."""
    if name in _BLOBS:
        assert isinstance(value, bytes)
        return value
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, int):
        return b"%d" % value
    assert isinstance(value, str), (name, value)
    # surrogatepass: a traceback (error_text) may hold lone surrogates.
    return value.encode("utf-8", "surrogatepass")


def encode_fields(values: Mapping[str, object]) -> list[bytes]:
    """field, value, ... for HSET; None values are left out (absent = None)."""
    flat: list[bytes] = []
    for name, value in values.items():
        if value is not None:
            flat += (name.encode(), encode_value(name, value))
    return flat


def record_fields(record: ExecutionRecord) -> list[bytes]:
    """A new record's fields, except those the create script sets."""
    return encode_fields(
        {name: getattr(record, name) for name in _FIELDS if name not in _LEASE_FIELDS}
    )


def decode_record(stored: Mapping[bytes, bytes]) -> ExecutionRecord | None:
    """The record in a hash as HGETALL returns it; None for an empty hash."""
    if not stored:
        return None
    values: dict[str, object] = {}
    for raw_name, raw in stored.items():
        name = raw_name.decode()
        if name in _BLOBS:
            values[name] = bytes(raw)
        elif name in _FLOATS:
            values[name] = float(raw)
        elif name in _INTS:
            values[name] = int(raw)
        elif name == "cancel_requested":
            values[name] = raw == b"1"
        elif name in _FIELDS:
            values[name] = raw.decode("utf-8", "surrogatepass")
        # else: bookkeeping of the scripts (lease_nonce)
    return ExecutionRecord(**values)  # type: ignore[arg-type]


def pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A flat field, value, ... list (a script's HGETALL) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


@functools.lru_cache(maxsize=64)
def owner_digest(owner: str) -> bytes:
    """What the scripts compare with the stored owner: SHA-1 of its UTF-8
    bytes (what redis-py sends for a str), cut to OWNER_DIGEST bytes."""
    return hashlib.sha1(owner.encode()).digest()[:OWNER_DIGEST]  # noqa: S324 (not for security: tells owners apart)


def fence_arg(lease: Lease) -> bytes:
    """The one argument that fences a script: owner digest, token digits."""
    return owner_digest(lease.owner) + b"%d" % lease.token


def write_args(
    lease: Lease, writes: Iterable[tuple[Mapping[str, bytes], Collection[str]]]
) -> list[bytes]:
    """ARGV of WRITE for one or more writes of one lease, in order, merged into
    their net effect (the script applies them in one atomic step, so nothing
    could tell them apart): a key's last put or delete wins.

    It is one MessagePack array (the scripts' cmsgpack reads only its raw
    types, hence use_bin_type=False), because each RESP argument costs 6-8
    bytes of framing and a write per loop iteration has five: fence, deleted
    keys, deleted spans (see `_spans`), then key, value, ..."""
    writes = list(writes)
    if len(writes) == 1:
        [(puts, deleted)] = writes
    else:
        net: dict[str, bytes] = {}
        gone: dict[str, None] = {}  # ordered: deterministic arguments
        for puts_i, deletes_i in writes:
            for key in deletes_i:
                net.pop(key, None)
                gone[key] = None
            for key, value in puts_i.items():
                gone.pop(key, None)
                net[key] = value
        puts, deleted = net, gone
    singles, spans = _spans(deleted) if deleted else ((), ())
    packed: list[object] = [fence_arg(lease), singles, spans]
    for key, value in puts.items():
        packed += (key, value)
    return [msgpack.packb(packed, use_bin_type=False)]


# Fewer numbered keys in a row than this are sent one by one.
_MIN_SPAN = 4


def _spans(keys: Iterable[str]) -> tuple[list[str], list[object]]:
    """Deleted keys as (single keys, [prefix, first, last, ...]): a run of
    keys that differ only in a trailing number (a folded value's deltas,
    `#0+results.0` .. `#0+results.999`) goes as one span, not a thousand
    keys. Only canonical numbers (no leading zero) join a span, so the
    script's '%d' rebuilds exactly the keys given."""
    singles: list[str] = []
    numbered: dict[str, list[int]] = {}
    for key in keys:
        stem = key.rstrip("0123456789")
        digits = key[len(stem) :]
        if digits and (digits == "0" or digits[0] != "0") and len(digits) < 16:
            numbered.setdefault(stem, []).append(int(digits))
        else:
            singles.append(key)
    spans: list[object] = []
    for stem, numbers in numbered.items():
        numbers.sort()
        start = 0
        for i in range(1, len(numbers) + 1):
            if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
                run = numbers[start:i]
                if len(run) >= _MIN_SPAN:
                    spans += (stem, run[0], run[-1])
                else:
                    singles += (f"{stem}{n}" for n in run)
                start = i
    return singles, spans
