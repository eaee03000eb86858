"""Find the `async for` a helper call feeds, its body, and its carried locals.

`aiter_checkpointed(...)` is called from the user's frame with the loop's
GET_AITER right after the call. From there we take the loop head (the
instruction after GET_AITER) and define the body as every instruction that is
reachable from the head and can reach the head again without re-entering the
loop through its call. That covers `continue`, nested loops and the "cold"
except blocks that 3.12+ moves to the end of the code object; it leaves out
`break` paths and the code after the loop.

Checked on CPython 3.11, 3.12 and 3.13.
"""

from __future__ import annotations

import dataclasses
import dis
from dataclasses import dataclass
from types import CodeType

from resumable.runtime import bytecode

# Methods that change a container in place; a name they are called on is
# carried whatever its type. Other methods (client.post(...)) only make a
# name carried if its value turns out to be data (see `LoopSite.carried`).
CONTAINER_MUTATORS = frozenset(
    [
        "append",
        "extend",
        "insert",
        "add",
        "update",
        "pop",
        "popitem",
        "remove",
        "discard",
        "clear",
        "setdefault",
        "sort",
        "reverse",
        "appendleft",
        "extendleft",
        "popleft",
        "rotate",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "__setitem__",
        "__delitem__",
        "__iadd__",
        "__ior__",
    ]
)
APPEND_METHODS = frozenset({"append", "extend"})


class LoopShapeError(TypeError):
    """The helper is not the iterable of an `async for` statement."""


@dataclass(frozen=True, slots=True)
class LoopSite:
    """What the bytecode says about one `async for ... in aiter_checkpointed(...)`."""

    code: CodeType
    site: str  # stable within a code object: "qualname:loop<ordinal>"
    location: str  # "file:line" of the `async for`
    body: frozenset[int]  # instruction offsets inside the loop
    targets: frozenset[str]  # the loop variables themselves
    strong: tuple[str, ...]  # rebound or mutated as containers: always carried
    weak: tuple[str, ...]  # only non-container methods called: carried if data
    append_only: frozenset[str]  # only .append/.extend: checkpointed as deltas


_cache: dict[tuple[CodeType, int], LoopSite] = {}


def loop_site(code: CodeType, lasti: int) -> LoopSite:
    """The loop fed by the call executing at `lasti` in `code` (cached)."""
    key = (code, lasti)
    found = _cache.get(key)
    if found is None:
        found = _cache[key] = _analyse(code, lasti)
    return found


def _analyse(code: CodeType, lasti: int) -> LoopSite:
    facts = bytecode.facts(code)
    instructions = facts.instructions
    call = facts.index_at_or_before(lasti)
    where = f"{code.co_filename}:{_line(instructions[call], code)}"
    if call + 2 >= len(instructions) or instructions[call + 1].opname != "GET_AITER":
        raise LoopShapeError(
            f"aiter_checkpointed() at {where} must be the iterable of an `async for` "
            "statement: write `async for item in aiter_checkpointed(items):` (it finds "
            "the loop it feeds in the calling function's bytecode)."
        )
    head = call + 2
    region = bytecode.reachable(facts.successors, head, blocked=frozenset({call, call + 1}))
    body_indices = region & bytecode.reaching(facts.successors, head, region)
    body = frozenset(instructions[i].offset for i in body_indices)
    ordinal = sum(1 for ins in instructions[: call + 1] if ins.opname == "GET_AITER")

    targets = _targets(instructions, head)
    rebound = {name for name, offset in facts.rebinds if offset in body}
    rebound -= facts.comprehension_names  # 3.12+ inlined comprehensions restore them
    mutations = [m for m in facts.mutations if m.offset in body]
    for nested in _closures_called(facts, body):
        nested_rebound, nested_mutations = _closure_effects(nested)
        rebound |= nested_rebound
        mutations.extend(nested_mutations)

    strong = set(rebound)
    weak: set[str] = set()
    appended: set[str] = set()
    other_mutation: set[str] = set()
    for m in mutations:
        if m.kind != "method" or m.method in CONTAINER_MUTATORS:
            strong.add(m.name)
        else:
            weak.add(m.name)
        if m.kind == "method" and m.method in APPEND_METHODS:
            appended.add(m.name)
        else:
            other_mutation.add(m.name)
    # Carried = changed in the body and live at the loop head: its value may
    # be read by a later iteration or after the loop. Temporaries written
    # before they are read each iteration are dead there and never carried.
    cells = set(code.co_cellvars) | set(code.co_freevars)
    live = facts.live_at(head) | cells
    strong &= live
    weak &= live
    weak -= strong
    return LoopSite(
        code=code,
        # Ordinal and loop variables: stable across edits elsewhere in the
        # function, yet a different loop at the same place is told apart.
        site=f"{code.co_qualname}:loop{ordinal}({','.join(sorted(targets))})",
        location=f"{code.co_filename}:{_line(instructions[call + 1], code)}",
        body=body,
        targets=frozenset(targets),
        strong=tuple(sorted(strong)),
        weak=tuple(sorted(weak)),
        append_only=frozenset((appended & strong) - other_mutation - rebound),
    )


def _line(ins: dis.Instruction, code: CodeType) -> int:
    line = ins.positions.lineno if ins.positions else None
    return line if line is not None else code.co_firstlineno


def _targets(ins_list: list[dis.Instruction], head: int) -> set[str]:
    """Names the loop binds each iteration: the stores right after the await
    of __anext__ (after SEND's target; 3.12+ put an END_SEND there first)."""
    send = next(
        (i for i in range(head, min(head + 8, len(ins_list))) if ins_list[i].opname == "SEND"),
        None,
    )
    if send is None:
        return set()
    offsets = {ins.offset: i for i, ins in enumerate(ins_list)}
    i = offsets.get(ins_list[send].argval, len(ins_list))
    names: set[str] = set()
    while i < len(ins_list):
        ins = ins_list[i]
        if ins.opname in {"END_SEND", "UNPACK_SEQUENCE", "UNPACK_EX"}:
            pass
        elif ins.opname in {"STORE_FAST", "STORE_DEREF"}:
            names.add(str(ins.argval))
        elif ins.opname == "STORE_FAST_STORE_FAST":
            names.update(str(v) for v in ins.argval)
        else:
            break
        i += 1
    return names


def _closures_called(facts: bytecode.CodeFacts, body: frozenset[int]) -> list[CodeType]:
    """Nested functions the body may run: defined in the body, or bound to a
    local name earlier and loaded in the body."""
    found = [code for code, offset in facts.made_functions if offset in body]
    for name, offset in facts.loads:
        if offset in body and name in facts.functions:
            found.append(facts.functions[name])
    return list(dict.fromkeys(found))


def _closure_effects(code: CodeType) -> tuple[set[str], list[bytecode.Mutation]]:
    """What a nested function does to the enclosing frame's cells: `nonlocal`
    rebinding and in-place mutation of free variables."""
    facts = bytecode.facts(code)
    free = set(code.co_freevars)
    rebound = {name for name, _ in facts.rebinds if name in free}
    mutations = [dataclasses.replace(m, offset=-1) for m in facts.mutations if m.name in free]
    return rebound, mutations
