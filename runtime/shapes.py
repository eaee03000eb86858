"""The shape of a value's object graph, read once when a loop starts.

The bytecode analysis says *where* in a local's graph the body may reach (the
object itself, something `d` levels inside it, or anything below some
level); the shape says *what* lives there: which types at which depth, and
which objects (by id) belong to the graph. Together they decide, for
example, that passing `doc["text"]` to an unknown function cannot change
`docs` (a list of dicts of strings), or that `buf` changes because the
`csv.writer` the body writes through holds it.

The walk follows plain containers item by item and anything else through
`gc.get_referents` (what the garbage collector sees an object hold). It does
not enter code (functions, classes, modules) or resources, and stops after a
budget of objects: a graph it could not finish is treated as holding
anything.
"""

from __future__ import annotations

import collections
import gc
from dataclasses import dataclass, field
from typing import Any

from resumable.runtime import kinds

# Objects visited per value before the walk gives up (and the shape says
# "anything may be in there").
WALK_BUDGET = 250_000


@dataclass(slots=True)
class Shape:
    """What one value's graph holds. Built by `walk`; `lazy` builds one that
    walks only when something deeper than the value itself is asked about."""

    value: Any
    kind: type
    walked: bool = True
    depth_types: list[set[type]] = field(default_factory=list)  # index: depth
    # Depth down to which every object is a plain container or immutable, so
    # that "depth d" in the analysis means depth d here...
    transparent_until: int = 0
    # ...and only when no object is reached twice: a shared object sits at the
    # depth of its shortest path, however deep another path reaches it.
    tree: bool = True
    ids: set[int] = field(default_factory=set)  # mutable objects of the graph, root included
    resources: list[Any] = field(default_factory=list)  # resources found inside
    complete: bool = True

    def types_at(self, depth: int, exact: bool) -> set[type] | None:
        """Types that a value `depth` levels inside (exactly, or at least that
        deep) may have; None when the walk cannot say (anything)."""
        if depth == 0 and exact:
            return {self.kind}
        self.ensure()
        if not self.complete:
            return None
        if self.tree and depth <= self.transparent_until:
            if exact:
                return set(self.depth_types[depth]) if depth < len(self.depth_types) else set()
            found: set[type] = set()
            for level in self.depth_types[depth:]:
                found |= level
            return found
        # Past plain containers (a property may return anything, even the
        # root), or in a graph with sharing: any type of the graph.
        every: set[type] = set()
        for level in self.depth_types:
            every |= level
        return every

    @property
    def immutable(self) -> bool:
        """Nothing in the graph can change in place (a tuple of strings)."""
        if kinds.is_atom(self.value):
            return True
        self.ensure()
        return self.complete and not self.ids

    def ensure(self) -> None:
        if not self.walked:
            walked = walk(self.value)
            for name in (
                "depth_types",
                "transparent_until",
                "tree",
                "ids",
                "resources",
                "complete",
            ):
                setattr(self, name, getattr(walked, name))
            self.walked = True


def lazy(value: Any) -> Shape:
    return Shape(value, type(value), walked=False)


def walk(value: Any, budget: int = WALK_BUDGET) -> Shape:
    """The shape of `value`'s graph."""
    shape = Shape(value, type(value))
    seen: set[int] = set()
    level = [value]
    depth = 0
    transparent = True
    visited = 0
    atoms_here: set[type] = set()
    while level or atoms_here:
        if transparent:
            shape.transparent_until = depth
        types_here: set[type] = atoms_here
        atoms_below: set[type] = set()
        next_level: list[Any] = []
        for obj in level:
            kind = type(obj)
            types_here.add(kind)
            if kinds.is_atom(obj) or kinds.is_code(obj):
                continue
            if id(obj) in seen:
                shape.tree = False
                continue
            seen.add(id(obj))
            visited += 1
            if visited > budget:
                shape.complete = False
                return shape
            if kind is tuple or kind is frozenset:
                next_level.extend(obj)
                if any(not (kinds.is_atom(item) or kinds.is_code(item)) for item in obj):
                    shape.ids.add(id(obj))  # holds something mutable
                continue
            shape.ids.add(id(obj))
            if depth > 0 and kinds.by_class(obj) in (kinds.RESOURCE, kinds.FILE):
                shape.resources.append(obj)
                transparent = False
                continue
            if kind in kinds.TRANSPARENT:
                if isinstance(obj, dict):
                    _items(obj.keys(), next_level, atoms_below)
                    _items(obj.values(), next_level, atoms_below)
                else:
                    _items(obj, next_level, atoms_below)
                continue
            transparent = False
            next_level.extend(_referents(obj))
        shape.depth_types.append(types_here)
        level = next_level
        atoms_here = atoms_below
        depth += 1
    return shape


def _items(items: Any, next_level: list[Any], atoms_below: set[type]) -> None:
    """Queue a plain container's items for the next level. A container of
    nothing but exact atoms (a list of 100,000 ints) only adds its item types,
    found at C speed, instead of visiting every item."""
    found = set(map(type, items))
    if found <= kinds.ATOMS:
        atoms_below |= found
    else:
        next_level.extend(items)


def _referents(obj: Any) -> list[Any]:
    """What `obj` holds, for the walk: its referents minus its class, and the
    object behind a bound method."""
    found = []
    for ref in gc.get_referents(obj):
        if isinstance(ref, type):
            continue
        found.append(ref)
    bound = getattr(obj, "__self__", None) if kinds.is_code(obj) else None
    if bound is not None and not kinds.is_code(bound):
        found.append(bound)
    return found


def holds_resource(value: Any, budget: int = 20_000) -> Any | None:
    """A resource inside `value`'s graph (a socket, a lock, an SDK client...),
    or None."""
    seen: set[int] = set()
    todo: collections.deque[Any] = collections.deque([value])
    while todo and len(seen) < budget:
        obj = todo.popleft()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if kinds.is_atom(obj):
            continue
        if obj is not value and kinds.by_class(obj) in (kinds.RESOURCE, kinds.FILE):
            return obj
        if kinds.is_code(obj):
            bound = getattr(obj, "__self__", None)
            if bound is not None and not kinds.is_code(bound):
                todo.append(bound)
            continue
        if type(obj) in kinds.TRANSPARENT:
            todo.extend(obj.values() if isinstance(obj, dict) else obj)
        else:
            todo.extend(_referents(obj))
    return None
