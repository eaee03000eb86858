"""`CodeFacts` and `LoopSite` as plain JSON data, and back, for `analysis_cache`.

Values (`Val`) and their tags are written once each, in tables, and named
by their position; nested code objects (a closure's `funcs`, an effect's
`via`) by their path through `co_consts` from the analysed code object, so
that decoding gives back the very objects of the code at hand.

Decoding trusts nothing: every field is checked for its type and range, and
anything unexpected makes the whole entry a miss (`None`), never a partial
or guessed result. The instructions themselves (`dis.Instruction`) are not
written: `CodeFacts` lists them again from the code object when something
asks for them, and checks they are the ones the entry describes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from types import CodeType
from typing import TYPE_CHECKING, Any, TypeVar

from resumable.runtime.absval import (
    AWAIT,
    CALL,
    ESCAPE,
    GLOBAL_STORE,
    INPLACE,
    ITERATE,
    MAX_DEPTH,
    NO_CODE,
    STORE,
    SUBSCRIPT,
    YIELD,
    AnextItem,
    Effect,
    Tag,
    Val,
)

if TYPE_CHECKING:
    from resumable.runtime.bytecode import CodeFacts
    from resumable.runtime.loopsite import LoopSite

__all__ = ["decode_facts", "decode_site", "encode_facts", "encode_site"]

T = TypeVar("T")

_EFFECT_KINDS = frozenset({STORE, INPLACE, CALL, ITERATE, SUBSCRIPT, AWAIT, ESCAPE, YIELD})
_EFFECT_KINDS |= {GLOBAL_STORE}
# The only `Val.kind`s the analysis sets (opcodes._BUILT, and GET_ANEXT's).
_KINDS: dict[str, type] = {
    "tuple": tuple,
    "list": list,
    "set": set,
    "dict": dict,
    "AnextItem": AnextItem,
}
_KIND_NAMES = {kind: name for name, kind in _KINDS.items()}
_NONE = -1  # an absent Val (Effect.callee, Effect.into)


class _Malformed(Exception):
    """Data that is not what `encode_*` writes (decoding), or a value it
    does not know how to write (encoding)."""


# -- nested code objects ----------------------------------------------------------


def _code_paths(root: CodeType) -> dict[int, list[int]]:
    """id of each code object nested in `root` (at any depth) -> its path of
    indices through co_consts."""
    found: dict[int, list[int]] = {}

    def walk(code: CodeType, path: list[int]) -> None:
        for index, const in enumerate(code.co_consts):
            if isinstance(const, CodeType):
                inner = [*path, index]
                found.setdefault(id(const), inner)
                walk(const, inner)

    walk(root, [])
    return found


def _code_at(root: CodeType, path: object) -> CodeType:
    code = root
    for index in _ints(path):
        if not 0 <= index < len(code.co_consts):
            raise _Malformed("code path")
        code = code.co_consts[index]
        if not isinstance(code, CodeType):
            raise _Malformed("code path")
    if code is root:
        raise _Malformed("code path")
    return code


# -- encoding -----------------------------------------------------------------------


class _Encoder:
    def __init__(self, root: CodeType) -> None:
        self.root = root
        self.paths = _code_paths(root)
        self.tags: dict[Tag, int] = {}
        self.vals: dict[Val, int] = {}
        self.tag_table: list[list[Any]] = []
        self.val_table: list[list[Any]] = []

    def code(self, code: CodeType) -> list[int]:
        path = self.paths.get(id(code))
        if path is None:
            # Code objects compare by value: an equal one nested here will do.
            path = next((self.paths[id(c)] for c in _nested(self.root) if c == code), None)
        if path is None:
            raise _Malformed(f"a code object not nested in {self.root.co_qualname}")
        return path

    def tag(self, tag: Tag) -> int:
        found = self.tags.get(tag)
        if found is None:
            found = self.tags[tag] = len(self.tag_table)
            self.tag_table.append([tag.root, tag.depth, tag.exact])
        return found

    def val(self, val: Val | None) -> int:
        if val is None:
            return _NONE
        found = self.vals.get(val)
        if found is None:
            kind = None
            if val.kind is not None:
                kind = _KIND_NAMES.get(val.kind)
                if kind is None:
                    raise _Malformed(f"a value of kind {val.kind!r}")
            entry = [
                sorted(self.tag(t) for t in val.tags),
                sorted(self.code(c) for c in val.funcs),
                list(val.path) if val.path is not None else None,
                val.null,
                kind,
            ]
            found = self.vals[val] = len(self.val_table)
            self.val_table.append(entry)
        return found

    def effect(self, effect: Effect) -> list[Any]:
        return [
            effect.offset,
            effect.kind,
            self.val(effect.target),
            effect.name,
            self.val(effect.callee),
            [self.val(a) for a in effect.args],
            list(effect.kwnames),
            effect.method,
            self.val(effect.into),
            self.code(effect.via) if effect.via is not None else None,
        ]


def _nested(code: CodeType) -> Iterable[CodeType]:
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield const
            yield from _nested(const)


def encode_facts(facts: CodeFacts) -> dict[str, Any] | None:
    """Plain data for `facts`; None when it holds something this encoding
    does not know (then it is not cached)."""
    encoder = _Encoder(facts.code)
    try:
        effects = [encoder.effect(e) for e in facts.effects]
        anext = {k: encoder.val(v) for k, v in facts.anext_sources.items()}
        calls = {k: encoder.val(v) for k, v in facts.call_sources.items()}
        returns = encoder.val(facts.returns)
    except _Malformed:
        return None
    # Most instructions use and define one name or none: each distinct set
    # of names is written once.
    sets: dict[frozenset[str], int] = {}
    per_instruction = {
        field: [sets.setdefault(names, len(sets)) for names in getattr(facts, field)]
        for field in ("uses", "defs", "may_defs")
    }
    return {
        "offsets": facts.offsets,
        "successors": facts.successors,
        "depth": facts.depth,
        "name_sets": [sorted(names) for names in sets],
        **per_instruction,
        "frame_escapes": facts.frame_escapes,
        "tags": encoder.tag_table,
        "vals": encoder.val_table,
        "effects": effects,
        "anext_sources": anext,
        "call_sources": calls,
        "returns": returns,
    }


def encode_site(site: LoopSite) -> dict[str, Any]:
    """Plain data for `site` (its effects are read back from the facts)."""
    return {
        "site": site.site,
        "location": site.location,
        "body": sorted(site.body),
        "head_offset": site.head_offset,
        "targets": sorted(site.targets),
        "live": sorted(site.live),
        "rebound": site.rebound,
        "closure_rebound": site.closure_rebound,
        "globals_rebound": site.globals_rebound,
        "frame_escapes": site.frame_escapes,
    }


# -- decoding -----------------------------------------------------------------------


def _int(value: object) -> int:
    if type(value) is not int:
        raise _Malformed("int")
    return value


def _str(value: object) -> str:
    if type(value) is not str:
        raise _Malformed("str")
    return value


def _bool(value: object) -> bool:
    if type(value) is not bool:
        raise _Malformed("bool")
    return value


def _list(value: object, item: Callable[[object], T]) -> list[T]:
    return [item(v) for v in _items(value)]


def _items(value: object, length: int | None = None) -> list[Any]:
    if type(value) is not list or (length is not None and len(value) != length):
        raise _Malformed("list")
    return value


def _ints(value: object) -> list[int]:
    # One pass in C over the types: this runs for every instruction.
    if type(value) is not list or (value and set(map(type, value)) != {int}):
        raise _Malformed("list of int")
    return value


def _strs(value: object) -> list[str]:
    if type(value) is not list or (value and set(map(type, value)) != {str}):
        raise _Malformed("list of str")
    return value


def _names(value: object) -> frozenset[str]:
    return frozenset(_strs(value))


def _indices(value: object, count: int) -> list[int]:
    found = _ints(value)
    if found and (min(found) < 0 or max(found) >= count):
        raise _Malformed("index")
    return found


def _dict(value: object, item: Callable[[object], T]) -> dict[str, T]:
    if type(value) is not dict:
        raise _Malformed("dict")
    return {_str(k): item(v) for k, v in value.items()}


def _fields(data: object, names: frozenset[str]) -> dict[str, Any]:
    if type(data) is not dict or data.keys() != names:
        raise _Malformed("fields")
    return data


_FACTS_FIELDS = frozenset(
    "offsets successors depth name_sets uses defs may_defs frame_escapes tags vals effects "
    "anext_sources call_sources returns".split()
)
_SITE_FIELDS = frozenset(
    "site location body head_offset targets live rebound closure_rebound "
    "globals_rebound frame_escapes".split()
)


def decode_facts(code: CodeType, data: object) -> CodeFacts | None:
    """The `CodeFacts` of `code` that `data` describes, or None if `data` is
    not exactly what `encode_facts` writes for a code object like it."""
    try:
        return _decode_facts(code, data)
    except (_Malformed, IndexError, RecursionError):
        return None


def _decode_facts(code: CodeType, data: object) -> CodeFacts:
    from resumable.runtime.bytecode import CodeFacts  # bytecode imports this module

    fields = _fields(data, _FACTS_FIELDS)
    offsets = _ints(fields["offsets"])
    count = len(offsets)
    if not count or offsets[0] < 0 or offsets[-1] >= len(code.co_code):
        raise _Malformed("offsets")
    if any(a >= b for a, b in itertools.pairwise(offsets)):
        raise _Malformed("offsets")

    def per_instruction(value: object) -> list[Any]:
        if type(value) is not list or len(value) != count:
            raise _Malformed("per-instruction list")
        return value

    successors = per_instruction(fields["successors"])
    if set(map(type, successors)) != {list}:
        raise _Malformed("successors")
    _indices(list(itertools.chain.from_iterable(successors)), count)
    depth = _ints(per_instruction(fields["depth"]))
    if min(depth) < -1 or max(depth) > code.co_stacksize:
        raise _Malformed("depth")
    name_sets = [_names(v) for v in _items(fields["name_sets"])]
    uses, defs, may_defs = (
        list(map(name_sets.__getitem__, _indices(per_instruction(fields[f]), len(name_sets))))
        for f in ("uses", "defs", "may_defs")
    )

    tags = [_tag(v) for v in _items(fields["tags"])]
    vals = _vals(fields["vals"], tags, code)
    known = frozenset(offsets)

    def val(value: object) -> Val:
        found = _int(value)
        if not 0 <= found < len(vals):
            raise _Malformed("value index")
        return vals[found]

    def maybe_val(value: object) -> Val | None:
        return None if value == _NONE else val(value)

    def effect(value: object) -> Effect:
        offset, kind, target, name, callee, args, kwnames, method, into, via = _items(value, 10)
        if _int(offset) not in known or _str(kind) not in _EFFECT_KINDS:
            raise _Malformed("effect")
        return Effect(
            offset,
            kind,
            val(target),
            name=None if name is None else _str(name),
            callee=maybe_val(callee),
            args=tuple(vals[i] for i in _indices(args, len(vals))),
            kwnames=tuple(_strs(kwnames)),
            method=_bool(method),
            into=maybe_val(into),
            via=None if via is None else _code_at(code, via),
        )

    return CodeFacts(
        code=code,
        offsets=offsets,
        index_of={offset: i for i, offset in enumerate(offsets)},
        successors=successors,
        depth=depth,
        effects=_list(fields["effects"], effect),
        uses=uses,
        defs=defs,
        may_defs=may_defs,
        frame_escapes=_bool(fields["frame_escapes"]),
        anext_sources=_dict(fields["anext_sources"], val),
        call_sources=_dict(fields["call_sources"], val),
        returns=val(fields["returns"]),
    )


def _tag(value: object) -> Tag:
    root, depth, exact = _items(value, 3)
    if not _str(root) or not 0 <= _int(depth) <= MAX_DEPTH:
        raise _Malformed("tag")
    return Tag(root, depth, _bool(exact))


def _vals(value: object, tags: list[Tag], code: CodeType) -> list[Val]:
    entries = [_items(v, 5) for v in _items(value)]
    # Every tag index of the table at once: one check instead of one per value.
    for indices in (e[0] for e in entries):
        if type(indices) is not list:
            raise _Malformed("tag indices")
    _indices(list(itertools.chain.from_iterable(e[0] for e in entries)), len(tags))
    vals = []
    lookup = tags.__getitem__
    for indices, funcs, path, null, kind in entries:
        if kind is not None and (type(kind) is not str or kind not in _KINDS):
            raise _Malformed("kind")
        vals.append(
            Val(
                frozenset(map(lookup, indices)),
                frozenset(_code_at(code, p) for p in _items(funcs)) if funcs else NO_CODE,
                None if path is None else tuple(_strs(path)),
                _bool(null),
                None if kind is None else _KINDS[kind],
            )
        )
    return vals


def decode_site(facts: CodeFacts, data: object) -> LoopSite | None:
    """The `LoopSite` in `facts.code` that `data` describes, or None."""
    try:
        return _decode_site(facts, data)
    except _Malformed:
        return None


def _decode_site(facts: CodeFacts, data: object) -> LoopSite:
    from resumable.runtime.loopsite import LoopSite  # loopsite imports this module

    fields = _fields(data, _SITE_FIELDS)
    known = frozenset(facts.offsets)

    def offset(value: object) -> int:
        found = _int(value)
        if found not in known:
            raise _Malformed("offset")
        return found

    body = frozenset(_ints(fields["body"]))
    if not body <= known:
        raise _Malformed("loop body")
    head = offset(fields["head_offset"])
    if head not in body:
        raise _Malformed("loop head")
    return LoopSite(
        code=facts.code,
        site=_str(fields["site"]),
        location=_str(fields["location"]),
        body=body,
        head_offset=head,
        targets=_names(fields["targets"]),
        live=_names(fields["live"]),
        rebound=_dict(fields["rebound"], offset),
        closure_rebound=_dict(fields["closure_rebound"], offset),
        globals_rebound=_dict(fields["globals_rebound"], offset),
        # In the facts' order, as loopsite selects them.
        effects=tuple(e for e in facts.effects if e.offset in body),
        frame_escapes=_bool(fields["frame_escapes"]),
    )
