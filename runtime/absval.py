"""What the bytecode analysis knows about a value, and what the code does to it.

A `Val` is where a value on the interpreter stack (or in a local) may have
come from, as a set of tags. A tag names a *root* — a local of the frame
(``"x"``) or a module global (``"$x"``) — and how the value relates to the
object that root holds:

* depth 0, exact: it may be that very object;
* depth d, exact: it may be an object d steps inside it (``x[k]`` is depth 1,
  ``x[k].a`` depth 2), reached through subscripts, attributes or iteration;
* depth d, not exact ("at least d"): it may be anything reachable from the
  root at depth d or deeper, or a new object that holds such things (a call
  result, ``[x]``, ``x + y``).

An `Effect` is one thing an instruction does that may change a value or let
it escape (a store, a call, an iteration...). The analysis over-approximates:
a value may carry tags it does not have at run time, never the reverse. Run
time facts (types, callees) then decide which effects really change state
(`runtime.effects`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import CodeType

# Depths past this are folded into "at least MAX_DEPTH": nested data deeper
# than that is rare, and the lattice stays small so the fixpoint converges.
MAX_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Tag:
    root: str  # a local's name, or "$" + a global's name
    depth: int = 0
    exact: bool = True  # False: "depth or deeper, or a new object holding such"

    def child(self) -> Tag:
        if not self.exact:
            return self
        if self.depth >= MAX_DEPTH:
            return Tag(self.root, MAX_DEPTH, exact=False)
        return Tag(self.root, self.depth + 1, exact=True)

    def loose(self) -> Tag:
        return self if not self.exact else Tag(self.root, self.depth, exact=False)

    @property
    def is_global(self) -> bool:
        return self.root.startswith("$")

    @property
    def is_pseudo(self) -> bool:
        """An item ("@") or a call result ("%"): not a variable of the frame."""
        return self.root[0] in "@%"

    @property
    def is_item(self) -> bool:
        """A pseudo-root: the item an `async for` got at the GET_ANEXT whose
        offset follows the "@" (see `AnextItem`)."""
        return self.root.startswith("@")

    @property
    def name(self) -> str:
        return self.root[1:] if self.is_global else self.root


class AnextItem:
    """Marks the awaitable GET_ANEXT pushes: the value awaiting it gives is
    the loop's item, named by a pseudo-root "@<offset>" instead of "anything
    derived from the iterator". Where that item comes from is decided later:
    statically (`CodeFacts.anext_sources`), or, for the checkpointed loop
    itself, from the iterable at run time (a plain list's items are its
    elements)."""


NO_TAGS: frozenset[Tag] = frozenset()
NO_CODE: frozenset[CodeType] = frozenset()


@dataclass(frozen=True, slots=True)
class Val:
    """An abstract value. `funcs` are the nested code objects a function value
    may have been made from (calling it runs their effects); `path` is how it
    was reached by name (("G", "json", "dumps"), ("L", "client", "post")),
    kept so that the run time can resolve a callee; `null` marks the NULL
    that CALL's calling convention puts beside a callable."""

    tags: frozenset[Tag] = NO_TAGS
    funcs: frozenset[CodeType] = NO_CODE
    path: tuple[str, ...] | None = None
    null: bool = False
    kind: type | None = None  # known statically: built by BUILD_LIST, BUILD_MAP...

    def child(self, name: str | None = None) -> Val:
        """x[k], x.attr, an item x yields: an object one level inside."""
        # ("?",) roots a path we cannot resolve but whose last name (a
        # method's) still matters.
        path = (self.path or ("?",)) + (name,) if name is not None else None
        return Val(frozenset(t.child() for t in self.tags), NO_CODE, path)

    def __bool__(self) -> bool:  # "may this value come from anything we track?"
        return bool(self.tags or self.funcs)


FRESH = Val()
NULL = Val(null=True)


def local(name: str) -> Val:
    return Val(frozenset({Tag(name)}), NO_CODE, ("L", name))


def global_(name: str) -> Val:
    return Val(frozenset({Tag("$" + name)}), NO_CODE, ("G", name))


def derived(*values: Val) -> Val:
    """A value computed from `values` that may be one of them, or hold parts
    of them (a call result, a new container, `a + b`)."""
    tags: set[Tag] = set()
    funcs: set[CodeType] = set()
    for value in values:
        tags.update(t.loose() for t in value.tags)
        funcs.update(value.funcs)
    return Val(frozenset(tags), frozenset(funcs)) if tags or funcs else FRESH


def merge(a: Val, b: Val) -> Val:
    if a == b:
        return a
    return Val(
        a.tags | b.tags,
        a.funcs | b.funcs,
        a.path if a.path == b.path else None,
        a.null and b.null,
        a.kind if a.kind is b.kind else None,
    )


def union(a: Val, b: Val) -> Val:
    """`a`, which now also holds (or may be) `b`'s roots."""
    if not b:
        return a
    return Val(a.tags | b.tags, a.funcs | b.funcs, a.path, a.null, a.kind)


# Effect kinds. Each names what an instruction may do to `Effect.target`.
STORE = "store"  # target[k] = v, target.a = v, del target[k], slice stores
INPLACE = "inplace"  # target += v (and the other in-place operators)
CALL = "call"  # callee(*args): may change any argument (and the callee)
ITERATE = "iterate"  # for/unpack/`in`/*spread over target: consumes iterators
SUBSCRIPT = "subscript"  # target[k] read: changes a defaultdict
AWAIT = "await"  # await target
ESCAPE = "escape"  # target is stored into `into` (a container, an attribute)
YIELD = "yield"  # target leaves the frame to a consumer (async generator)
GLOBAL_STORE = "global-store"  # `global name; name = ...` (target: the global)


@dataclass(frozen=True, slots=True)
class Effect:
    offset: int  # of the instruction (in the analysed code object)
    kind: str
    target: Val
    name: str | None = None  # attribute or method name, operator, global name
    callee: Val | None = None  # CALL: the callable
    args: tuple[Val, ...] = ()  # CALL: positional then keyword values (self first)
    kwnames: tuple[str, ...] = ()  # CALL: names of the last len(kwnames) args
    method: bool = False  # CALL through obj.name(...): args[0] is obj
    into: Val | None = None  # ESCAPE: the container
    via: CodeType | None = None  # the nested function whose effect this is
