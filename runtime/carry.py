"""Which locals a checkpointed loop carries, decided when the loop starts.

The rule (README, "What gets carried"): a local that is live at the loop head
and that the body may change, by any path, is carried; what cannot be carried
and cannot be proven safe to leave out is refused before any work is done.

1. The bytecode analysis (`loopsite`) gives the body's rebindings and
   effects. `effects.Judge` decides, with the values in the frame, which
   roots each effect may change (NONE, SHALLOW or DEEP).
2. Escapes link roots: a value stored into a container changes when the
   container changes deeply, and a container changes when a live value
   stored into it does.
3. Objects shared at run time (an alias made before the loop, a `csv.writer`
   over a `StringIO`, a holder of a list) link roots too: a local whose graph
   shares an object with a changing one is changing.
4. Each changing live local is then carried (data), left to the code before
   the loop (a resource: client, session, lock, logger, progress bar), or
   refused (a running hash, a file the code before the loop truncates, an
   iterator or queue the body advances, an unpicklable object the body
   changes), with the line that changes it and the fix.

Locals unbound when the loop starts (`client = None` is bound, a first
assignment inside the body is not) are classified at the first checkpoint
that finds them bound.
"""

from __future__ import annotations

import builtins
import collections
import gc
import types
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from resumable.errors import CheckpointError
from resumable.runtime import bytecode, callees, deltas, effects, kinds, shapes
from resumable.runtime.absval import STORE, Tag
from resumable.runtime.effects import DEEP, NONE, SHALLOW, Change, Judge, Part

__all__ = ["CARRY", "RESOURCE", "VIEW", "CarryPlan", "Change", "automatic", "classify", "explicit"]
from resumable.runtime.loopsite import LoopSite
from resumable.stores.codec import Codec, UnserializableValue

# Test hook (tests/test_properties.py): break one rule on purpose to show the
# property test catches it. "partial-mutation", "method-call",
# "call-argument", "pre-loop-alias" or "closure-call"; never set otherwise.
BROKEN_RULE: str | None = None

CARRY = "carry"
RESOURCE = "resource"
VIEW = "view"

_MISSING = object()


@dataclass(slots=True)
class CarryPlan:
    """What a loop writes at each checkpoint."""

    names: list[str] = field(default_factory=list)  # carried: locals, and "$global"
    # Containers the body changes only at the top level, written as deltas
    # (see deltas.py); the flag: every change is an append.
    deltas: dict[str, bool] = field(default_factory=dict)
    pending: dict[str, Change] = field(default_factory=dict)  # changing, unbound at start
    left_out: dict[str, str] = field(default_factory=dict)  # name -> RESOURCE or VIEW
    ignored: frozenset[str] = frozenset()
    audited: list[str] = field(default_factory=list)  # neither carried, ignored nor resources
    # Carried values share objects: encode them together with pickle, whose
    # memo keeps the sharing (msgpack would make copies).
    shared: bool = False
    decisive: dict[tuple[str, ...], Any] = field(default_factory=dict)
    changes: dict[str, Change] = field(default_factory=dict)


def frame_values(
    frame: FrameType, names: frozenset[str] | set[str] | None = None
) -> dict[str, Any]:
    """The frame's locals (a plain dict; on 3.13+ f_locals is a proxy)."""
    proxy = frame.f_locals
    if names is None:
        return dict(proxy)
    found = {}
    for name in names:
        value = proxy.get(name, _MISSING)
        if value is not _MISSING:
            found[name] = value
    return found


def read_root(frame: FrameType, root: str, values: dict[str, Any]) -> Any:
    if root.startswith("$"):
        found = frame.f_globals.get(root[1:], _MISSING)
        if found is _MISSING:
            found = getattr(builtins, root[1:], _MISSING)
        return found
    return values.get(root, _MISSING)


def explicit(
    site: LoopSite, frame: FrameType, names: tuple[str, ...], ignore: frozenset[str]
) -> CarryPlan:
    """carry=("a", "b"): exactly these; containers still become deltas."""
    values = frame_values(frame)
    plan = CarryPlan(names=list(dict.fromkeys(names)), ignored=ignore)
    auto = automatic(site, frame, ignore | frozenset(names), values=values, refuse=False)
    found = {**_delta_candidates(site, frame, values), **auto.deltas}
    plan.deltas = {n: appends for n, appends in found.items() if n in plan.names}
    plan.audited = [
        n for n in auto.audited + auto.names + list(auto.pending) if n not in plan.names
    ]
    plan.shared = True
    return plan


def _delta_candidates(site: LoopSite, frame: FrameType, values: dict[str, Any]) -> dict[str, bool]:
    judge = Judge(frame.f_globals, values, facts=bytecode.facts(site.code))
    found = {}
    for name in site.rebinding().keys() | site.roots:
        value = values.get(name, _MISSING)
        if type(value) not in deltas.KIND_OF or name in site.rebinding():
            continue
        change, escapes = judge.judge(name, Part(shapes.lazy(value)), site.effects)
        if change.level == SHALLOW and not escapes:
            found[name] = change.appends_only
    return found


def automatic(
    site: LoopSite,
    frame: FrameType,
    ignore: frozenset[str],
    *,
    iterable: Any = _MISSING,
    values: dict[str, Any] | None = None,
    refuse: bool = True,
    decoded: frozenset[int] = frozenset(),
) -> CarryPlan:
    """carry=AUTO: the plan for the loop at `site`, running in `frame` over
    `iterable`. `decoded`: ids of values a resume just decoded from their
    records, which need no round-trip check (see `classify`)."""
    effects.BROKEN_RULE = BROKEN_RULE
    values = frame_values(frame) if values is None else values
    judge = Judge(frame.f_globals, values, facts=bytecode.facts(site.code))
    if iterable is not _MISSING:
        relation = item_relation(iterable, values)
        if relation is not None:
            judge.overrides[f"@{site.head_offset}"] = relation
    rebound = site.rebinding(closures=BROKEN_RULE != "closure-call")
    live = set(site.live) | {"$" + g for g in site.globals_rebound}
    roots = set(site.roots) | set(rebound) | {"$" + g for g in site.globals_rebound}
    parts: dict[str, Part] = {}
    for root in roots:
        value = read_root(frame, root, values)
        parts[root] = Part(None if value is _MISSING else shapes.lazy(value))

    changes: dict[str, Change] = {}
    escapes: dict[str, set[str]] = {}
    # Functions, classes and modules are code, not state: what flows through
    # them (a call result "derived" from `json`) does not change them. Only
    # setting one of their attributes does (refused as state outside the
    # frame), or rebinding the name (carried).
    code_roots = {
        root
        for root, part in parts.items()
        if part.shape is not None and kinds.is_code(part.shape.value)
    }
    for root in roots:
        if root in code_roots:
            changes[root] = _attribute_stores(site, root)
            escapes[root] = set()
            continue
        change, found = judge.judge(root, parts[root], site.effects)
        changes[root] = change
        escapes[root] = {into for into, _ in found if into not in code_roots}

    def code(root: str) -> bool:
        # Roots reached only through what a call result holds (a handler
        # function inside a client) are not in `roots`: look at them here.
        if root in code_roots:
            return True
        value = read_root(frame, root, values)
        return value is not _MISSING and kinds.is_code(value)

    for root in list(escapes):
        escapes[root] = {into for into in escapes[root] if not code(into)}
    for name, offset in rebound.items():
        _rebinds(changes.setdefault(name, Change()), offset)
    for name, offset in site.globals_rebound.items():
        _rebinds(changes.setdefault("$" + name, Change()), offset)
    _propagate(changes, escapes, live, parts)

    plan = CarryPlan(ignored=ignore, decisive=dict(judge.decisive), changes=changes)
    changing = {
        root
        for root, change in changes.items()
        if change.level > NONE
        and (root in live or root.startswith("$"))
        and not (root not in parts and code(root))
    }
    if BROKEN_RULE != "pre-loop-alias":
        _shared_objects(site, frame, values=values, changes=changes, changing=changing, parts=parts)
    for root in sorted(changing):
        if root in ignore or root.lstrip("$") in ignore:
            continue
        value = read_root(frame, root, values)
        if value is _MISSING:
            plan.pending[root] = changes[root]
            continue
        decided = classify(site, root, value, changes[root], refuse=refuse, decoded=decoded)
        if decided == CARRY:
            plan.names.append(root)
            change = changes[root]
            if (
                change.level == SHALLOW
                and root not in rebound
                and type(value) in deltas.KIND_OF
                and not escapes.get(root)
            ):
                plan.deltas[root] = change.appends_only
        elif decided is not None:
            plan.left_out[root] = decided
    plan.audited = sorted(
        name
        for name in site.live
        if name not in plan.names
        and name not in plan.pending
        and name not in plan.left_out
        and name not in ignore
        and name in values
    )
    plan.shared = _carried_share(plan, values, frame)
    return plan


def _attribute_stores(site: LoopSite, root: str) -> Change:
    change = Change()
    for effect in site.effects:
        if effect.kind == STORE and any(
            t.root == root and t.depth == 0 and t.exact for t in effect.target.tags
        ):
            change.note(SHALLOW, effect, f"sets {effect.name or 'an attribute'} on it")
    return change


# Iterators over a container, and wrappers whose items are new tuples holding
# a container's items (enumerate, zip, dict views): unwrapped to find the
# container a local holds.
_WRAPPERS = frozenset(
    {"enumerate", "zip", "reversed", "dict_keys", "dict_values", "dict_items", "map", "filter"}
)


def item_relation(iterable: Any, values: dict[str, Any]) -> tuple[Tag, ...] | None:
    """How the checkpointed loop's items relate to the frame's locals: the
    elements of a list `docs` are exactly one level inside `docs`; the tuples
    `enumerate(ops)` yields hold `ops`'s elements. None when it cannot tell
    (a generator may yield anything its arguments reach)."""
    owners = {id(v): name for name, v in values.items() if not kinds.is_atom(v)}
    if isinstance(iterable, range | str | bytes):
        return ()
    name = owners.get(id(iterable))
    if name is not None and type(iterable) in kinds.TRANSPARENT:
        return (Tag(name, 1, exact=True),)
    found: list[Tag] = []
    todo, seen = [iterable], 0
    while todo and seen < 8:
        obj = todo.pop()
        seen += 1
        kind_name = type(obj).__name__
        name = owners.get(id(obj))
        if name is not None and type(obj) in kinds.TRANSPARENT and obj is not iterable:
            found.append(Tag(name, 1, exact=False))
            continue
        if kind_name in _WRAPPERS or (
            kind_name.endswith("iterator") and type(obj).__module__ == "builtins"
        ):
            refs = [r for r in gc.get_referents(obj) if not isinstance(r, type)]
            if kind_name in ("map", "filter"):
                return None  # calls a function on each item: anything may come out
            todo.extend(refs)
            continue
        if kinds.is_atom(obj):
            continue
        return None
    return tuple(found)


def _rebinds(change: Change, offset: int) -> None:
    change.appends_only = False
    if change.level < SHALLOW:
        change.level, change.offset, change.how = SHALLOW, offset, "rebinds it"


def _propagate(
    changes: dict[str, Change],
    escapes: dict[str, set[str]],
    live: set[str],
    parts: dict[str, Part],
) -> None:
    """A value stored into a container changes when the container changes
    deeply; a container changes (deeply) when a live value inside it changes
    in place (a rebinding of the name leaves the stored object alone)."""

    def mutable(root: str) -> bool:
        part = parts.get(root)
        return part is None or part.shape is None or not part.shape.immutable

    moved = True
    while moved:
        moved = False
        for root, intos in escapes.items():
            mine = changes.setdefault(root, Change())
            for into in intos:
                theirs = changes.setdefault(into, Change())
                if theirs.level == DEEP and mine.level < DEEP and mutable(root):
                    _follow(mine, theirs, f"is stored into {into.lstrip('$')}, which {theirs.how}")
                    moved = True
                if (root in live or root.startswith("$")) and mine.in_place and theirs.level < DEEP:
                    _follow(theirs, mine, f"holds {root.lstrip('$')}, which {mine.how}")
                    moved = True


def _follow(change: Change, cause: Change, how: str) -> None:
    change.level = DEEP
    change.offset = cause.offset
    change.via = cause.via
    change.how = how
    change.appends_only = False
    change.in_place = True


def _shared_objects(
    site: LoopSite,
    frame: FrameType,
    *,
    values: dict[str, Any],
    changes: dict[str, Change],
    changing: set[str],
    parts: dict[str, Part],
) -> None:
    """Locals that share objects with a changing one change too (an alias
    made before the loop, a writer over a buffer, a holder of a list)."""
    candidates = {
        name: value
        for name, value in values.items()
        if name in site.live
        and name not in changing
        and not kinds.is_atom(value)
        and not kinds.is_code(value)
        and kinds.by_class(value) not in (kinds.RESOURCE, kinds.FILE)
    }
    if not candidates:
        return
    reached: set[int] = set()
    done: set[str] = set()
    walked: dict[str, shapes.Shape] = {}

    def shape_of(name: str, value: Any) -> shapes.Shape:
        # Each graph is walked once, however often the net grows.
        known = parts[name].shape if name in parts else None
        if known is None:
            known = walked.get(name) or walked.setdefault(name, shapes.lazy(value))
        return known

    def spread(root: str) -> None:
        value = read_root(frame, root, values)
        if value is _MISSING or kinds.is_code(value):
            return
        category = kinds.by_class(value)
        if category == kinds.RESOURCE:
            return  # a client holding our data does not change it
        change = changes[root]
        if change.level == DEEP or category != kinds.OTHER or _unpicklable_hint(value):
            shape = shape_of(root, value)
            shape.ensure()
            reached.update(shape.ids)
            reached.update(id(getattr(f, "__self__", None)) for f in _bound_writers(value))
        else:
            reached.add(id(value))

    for root in changing:
        spread(root)
        done.add(root)
    moved = True
    while moved:
        moved = False
        for name, value in list(candidates.items()):
            shape = shape_of(name, value)
            shape.ensure()
            shared = reached & (shape.ids | {id(value)})
            if not shared:
                continue
            cause = next((r for r in sorted(changing) if r in done), "")
            change = changes.setdefault(name, Change())
            _follow(
                change,
                changes.get(cause, Change()),
                f"shares objects with {cause.lstrip('$')}, which the loop changes",
            )
            changing.add(name)
            del candidates[name]
            spread(name)
            done.add(name)
            moved = True


def _bound_writers(value: Any) -> list[Any]:
    """The bound methods a view writes through (csv.writer holds its file's
    `write`)."""
    return [
        ref
        for ref in gc.get_referents(value)
        if isinstance(ref, types.BuiltinMethodType | types.MethodType)
    ]


def _unpicklable_hint(value: Any) -> bool:
    return not hasattr(type(value), "__reduce_ex__")


def classify(
    site: LoopSite,
    root: str,
    value: Any,
    change: Change,
    *,
    refuse: bool = True,
    decoded: frozenset[int] = frozenset(),
) -> str | None:
    """CARRY, RESOURCE or VIEW for a changing local; raises CheckpointError
    when it can be neither carried nor left out (unless `refuse` is False,
    then None). A value in `decoded` (ids of values just decoded from the
    records) round-trips by construction: the O(n) check of a resumed list
    of 100,000 results is skipped."""
    name = root.lstrip("$")
    local = _Local(site, root, value, change, refuse)
    if id(value) in decoded:
        return CARRY
    if kinds.is_atom(value):
        return CARRY
    if kinds.is_code(value):
        if root.lstrip("$") in site.rebinding() or root.lstrip("$") in site.globals_rebound:
            return CARRY
        return _refuse(
            local,
            "it is code (a function, class or module), and "
            "the body changes it: that is state outside the function, which is not "
            "carried",
            "keep the state in a local variable of the @resumable function instead",
        )
    category = kinds.by_class(value)
    if kinds.in_memory_database(value):
        return _refuse(
            local,
            "it is an in-memory SQLite database: its "
            "tables are state that cannot be carried, and a resume would start "
            "them empty",
            "keep the rows in carried lists and load them into the "
            "database after the loop, or use a database file",
        )
    if category == kinds.RESOURCE:
        return RESOURCE
    if category == kinds.VIEW:
        return VIEW
    if category == kinds.FILE:
        if kinds.truncating(value):
            return _refuse(
                local,
                "it is a file opened for writing; on "
                "resume, the code before the loop opens it again, which empties it, "
                "and the rows written before the crash are lost",
                "open it in "
                "append mode and declare it with ignore=(" + repr(name) + ",), or "
                "collect the rows in a list and write the file after the loop",
            )
        if "a" in kinds.file_mode(value):
            return _refuse(
                local,
                "it is a file the body writes to; what "
                "its buffer holds at a crash is lost, and the iteration in flight "
                "writes its lines again on resume, so the file would not be the "
                "uninterrupted run's",
                "collect the rows in a carried list and "
                "write the file after the loop; or, to accept lines written at "
                "least once, declare it with ignore=(" + repr(name) + ",)",
            )
        return _refuse(
            local,
            "it is a file the body reads; its read "
            "position cannot be carried, so a resume would read it from the start "
            "again",
            "read it into a list before the loop, or iterate it with "
            "`async for line in aiter_checkpointed(f)`",
        )
    if category == kinds.ACCUMULATOR:
        return _refuse(
            local,
            "its state is part of the result (a running "
            "hash, a compressor, a queue), it cannot be pickled, and a resume would "
            "start it again from scratch",
            "carry the inputs instead (append them "
            "to a list and feed them to it after the loop), or move the loop into a "
            "@step",
        )
    if category == kinds.ITERATOR:
        if _round_trips(value):
            return CARRY
        return _refuse(
            local,
            "it is an iterator (or generator) that the "
            "body advances; it cannot be pickled, and a resume would start it again "
            "from the beginning",
            "iterate it with `async for x in "
            "aiter_checkpointed(it)`, or make a list of it before the loop",
        )
    if _round_trips(value):
        return CARRY
    if shapes.holds_resource(value) is not None and _only_calls(site, root):
        return RESOURCE
    return _refuse(
        local,
        "it cannot be pickled (or does not unpickle), "
        "so it cannot be carried, and the body changes it",
        "if its changes do not "
        "matter for the result, leave it out with ignore=(" + repr(name) + ",); "
        "otherwise keep the state in picklable data, or move the work into a @step",
    )


def _only_calls(site: LoopSite, root: str) -> bool:
    from resumable.runtime.absval import CALL, ESCAPE

    for effect in site.effects:
        values = (effect.target, effect.callee, effect.into, *effect.args)
        named = any(v is not None and any(t.root == root for t in v.tags) for v in values)
        if named and effect.kind not in (CALL, ESCAPE):
            return False
    return True


_round_trip_ok: dict[type, bool] = {}


def _round_trips(value: Any) -> bool:
    """Does a value survive dumps and loads? Checked once per type (a value
    that pickles but does not unpickle, like a tqdm bar, must never be
    written)."""
    kind = type(value)
    found = _round_trip_ok.get(kind)
    if found is not None and kind.__module__ != "builtins":
        return found
    if kind in _PLAIN and _only_plain_data(value):
        return True  # plain containers of atoms always round-trip: no O(n) pickle
    codec = Codec()
    try:
        blob = codec.dumps(value)
        codec.loads(blob)
    except (UnserializableValue, Exception):
        _round_trip_ok[kind] = False
        return False
    _round_trip_ok[kind] = True
    return True


def _only_plain_data(value: Any) -> bool:
    shape = shapes.lazy(value)
    shape.ensure()
    if not (shape.complete and shape.tree):
        return False
    return all(level <= _PLAIN for level in shape.depth_types)


# defaultdict is left out: its factory is not in the walk.
_PLAIN = kinds.ATOMS | (kinds.TRANSPARENT - {collections.defaultdict})


@dataclass(frozen=True, slots=True)
class _Local:
    """A changing local being classified, for the refusal that names it."""

    site: LoopSite
    root: str
    value: Any
    change: Change
    refuse: bool = True


def _refuse(local: _Local, reason: str, hint: str) -> str | None:
    """Raise the refusal (or, when only asked, say nothing was decided)."""
    if local.refuse:
        raise refusal(local, reason, hint)
    return None


def refusal(local: _Local, reason: str, hint: str) -> CheckpointError:
    site, root, value, change = local.site, local.root, local.value, local.change
    name = root.lstrip("$")
    if change.offset >= 0:
        line = site.line(change.offset) if change.via is None else None
        where = f"line {line}" if line is not None else f"a call at line {site.line(change.offset)}"
        via = f" (through {change.via.co_qualname})" if change.via is not None else ""
        reason = f"{where} {change.how}{via}; {reason}"
    label = f"global {name}" if root.startswith("$") else name
    return CheckpointError(
        f"loop {site.site} ({site.location})",
        label,
        kinds.describe_type(value),
        reason,
        f"Nothing was written for this loop. HINT: {hint}.",
    )


def _carried_share(plan: CarryPlan, values: dict[str, Any], frame: FrameType) -> bool:
    """Do carried values share objects? Then they are encoded together with
    pickle, which keeps the sharing, and none of the sharing ones is written
    as a delta (two records would rebuild two lists where there was one)."""
    if len(plan.names) < 2:
        return False
    owners: dict[int, str] = {}
    sharing: set[str] = set()
    for root in plan.names:
        value = read_root(frame, root, values)
        if value is _MISSING or kinds.is_atom(value):
            continue
        shape = shapes.lazy(value)
        shape.ensure()
        if not shape.complete:
            sharing.add(root)
        for ident in shape.ids | {id(value)}:
            other = owners.setdefault(ident, root)
            if other != root:
                sharing.update((root, other))
    for name in sharing:
        plan.deltas.pop(name, None)
    return bool(sharing)


def still_valid(plan: CarryPlan, frame: FrameType) -> bool:
    """Have the callees that proved locals untouched stayed the same?"""
    for path, found in plan.decisive.items():
        if path[0] != "G":
            continue
        if callees.resolve(path, frame.f_globals, {}) is not found:
            return False
    return True
