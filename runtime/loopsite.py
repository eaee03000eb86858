"""Find the `async for` a helper call feeds, its body, and what the body does.

`aiter_checkpointed(...)` is called from the user's frame with the loop's
GET_AITER right after the call. From there we take the loop head (the
instruction after GET_AITER, where each iteration starts) and define the
body as every instruction that is reachable from the head and can reach the
head again without re-entering the loop through its call. That covers
`continue`, nested loops and the "cold" except blocks that 3.12+ moves to
the end of the code object; it leaves out `break` paths and the code after
the loop.

What the body does is read from the abstract interpreter (`bytecode`): the
locals it rebinds (itself, or through closures it calls), the globals it
rebinds, and every effect of its instructions. Which of those effects really
change state is decided when the loop starts, with the values at hand
(`carry`).

Shapes the helper cannot serve are refused here (`LoopShapeError`): an async
comprehension (its partial result lives on the interpreter stack, where no
checkpoint can reach it), and a loop whose body yields to a consumer (an
async generator: the consumer's progress is not checkpointed).

Checked on CPython 3.11, 3.12, 3.13, 3.14 and 3.15.
"""

from __future__ import annotations

import dis
from dataclasses import dataclass
from types import CodeType

from resumable.errors import LoopShapeError
from resumable.runtime import analysis_cache, analysis_wire, bytecode, opcodes
from resumable.runtime.absval import GLOBAL_STORE, YIELD, Effect, Tag

_COMPREHENSION = (
    "aiter_checkpointed() is the source of an async comprehension, whose partial result "
    "lives on the interpreter stack where no checkpoint can reach it (a resumed run would "
    "return only the items after the crash)"
)
_COMPREHENSION_FIX = (
    "write a plain loop that appends: `results = []` then `async for d in "
    "aiter_checkpointed(docs): results.append(await f(d))`; or use `await amap(f, docs)`"
)
_ACCUMULATE = frozenset(
    {"LIST_APPEND", "SET_ADD", "MAP_ADD", "LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE", "DICT_MERGE"}
)


@dataclass(frozen=True, slots=True)
class LoopSite:
    """What the bytecode says about one `async for ... in aiter_checkpointed(...)`."""

    code: CodeType
    site: str  # stable within a code object: "qualname:loop<ordinal>(targets)"
    location: str  # "file:line" of the `async for`
    body: frozenset[int]  # instruction offsets inside the loop
    head_offset: int  # the GET_ANEXT each iteration starts at
    targets: frozenset[str]  # the loop variables themselves
    live: frozenset[str]  # locals whose value at the loop head may be read later
    rebound: dict[str, int]  # local -> offset of an instruction that rebinds it
    closure_rebound: dict[str, int]  # cell -> offset of a call of a closure rebinding it
    globals_rebound: dict[str, int]  # global -> offset of its `global x; x = ...`
    effects: tuple[Effect, ...]  # what the body's instructions (and closures) do
    frame_escapes: bool  # locals()/vars()/eval()/exec(): any local may be read

    def line(self, offset: int) -> int:
        return bytecode.facts(self.code).line_of(offset)

    def rebinding(self, *, closures: bool = True) -> dict[str, int]:
        """Locals the body rebinds, itself or through closures it calls."""
        if not closures:
            return self.rebound
        return {**self.closure_rebound, **self.rebound}

    @property
    def roots(self) -> frozenset[str]:
        """Every local and global ("$name") the body's effects may reach,
        through the items and call results they name too."""
        tags: set[Tag] = set()
        for effect in self.effects:
            for value in (effect.target, effect.callee, effect.into, *effect.args):
                if value is not None:
                    tags.update(value.tags)
        expanded = opcodes.expand_static(bytecode.facts(self.code), frozenset(tags))
        return frozenset(tag.root for tag in expanded)


_cache: dict[tuple[CodeType, int], LoopSite] = {}


def loop_site(code: CodeType, lasti: int) -> LoopSite:
    """The loop fed by the call executing at `lasti` in `code` (cached).
    Raises `bytecode.Unmodelled` for bytecode the analysis cannot follow."""
    key = (code, lasti)
    found = _cache.get(key)
    if found is None:
        facts = bytecode.facts(code)
        detail = str(lasti)
        found = analysis_wire.decode_site(facts, analysis_cache.read(code, "loop", detail))
        if found is None:
            found = _analyse(code, lasti)
            analysis_cache.write(code, "loop", detail, analysis_wire.encode_site(found))
        _cache[key] = found
    return found


def _analyse(code: CodeType, lasti: int) -> LoopSite:
    facts = bytecode.facts(code)
    instructions = facts.instructions
    call = facts.index_at_or_before(lasti)
    where = f"{code.co_filename}:{facts.line_of(instructions[call].offset)}"
    following = [ins.opname for ins in instructions[call + 1 : call + 8]]
    if _inline_comprehension_prelude(following):
        # 3.12+ inline a comprehension: its result list is built between the
        # call and the GET_AITER of its loop.
        raise LoopShapeError(where, _COMPREHENSION, _COMPREHENSION_FIX)
    if call + 2 >= len(instructions) or instructions[call + 1].opname != "GET_AITER":
        raise LoopShapeError(
            where,
            "it is not the iterable of an `async for` statement",
            "write `async for item in aiter_checkpointed(items):` (it finds the loop it "
            "feeds in the calling function's bytecode)",
        )
    head = call + 2
    if instructions[head].opname != "GET_ANEXT":
        # 3.11 compiles an async comprehension into a function of its own:
        # the iterator is handed to it, and its loop is not here.
        raise LoopShapeError(where, _COMPREHENSION, _COMPREHENSION_FIX)
    region = bytecode.reachable(facts.successors, head, blocked=frozenset({call, call + 1}))
    body_indices = region & bytecode.reaching(facts.successors, head, region)
    body = frozenset(instructions[i].offset for i in body_indices)
    location = f"{code.co_filename}:{facts.line_of(instructions[call + 1].offset)}"
    _refuse_shapes(facts, head, body_indices, location)

    rebound: dict[str, int] = {}
    closure_rebound: dict[str, int] = {}
    for i in sorted(body_indices):
        for name in facts.defs[i]:
            rebound.setdefault(name, instructions[i].offset)
        for name in facts.may_defs[i]:
            closure_rebound.setdefault(name, instructions[i].offset)
    effects = tuple(e for e in facts.effects if e.offset in body)
    globals_rebound: dict[str, int] = {}
    for effect in effects:
        if effect.kind == GLOBAL_STORE and effect.name is not None:
            globals_rebound.setdefault(effect.name, effect.offset)
    live = set(facts.live_at(head))
    # Free variables belong to the enclosing function, which may read them
    # whenever it likes.
    live |= set(code.co_freevars)
    if facts.frame_escapes:
        live |= set(code.co_varnames) | set(code.co_cellvars)
    targets = _targets(instructions, head)
    ordinal = sum(1 for ins in instructions[: call + 1] if ins.opname == "GET_AITER")
    return LoopSite(
        code=code,
        # Ordinal and loop variables: stable across edits elsewhere in the
        # function, yet a different loop at the same place is told apart.
        site=f"{code.co_qualname}:loop{ordinal}({','.join(sorted(targets))})",
        location=location,
        body=body,
        head_offset=instructions[head].offset,
        targets=frozenset(targets),
        live=frozenset(live),
        rebound=rebound,
        closure_rebound=closure_rebound,
        globals_rebound=globals_rebound,
        effects=effects,
        frame_escapes=facts.frame_escapes,
    )


# What 3.12+ emit between an inlined comprehension's iterable and its
# GET_AITER: save the shadowed names, then build the result under the iterator.
_INLINE_PRELUDE = frozenset({"LOAD_FAST_AND_CLEAR", "SWAP", "BUILD_LIST", "BUILD_SET", "BUILD_MAP"})


def _inline_comprehension_prelude(following: list[str]) -> bool:
    if "GET_AITER" not in following or following[0] == "GET_AITER":
        return False
    prelude = following[: following.index("GET_AITER")]
    return set(prelude) <= _INLINE_PRELUDE and any(op.startswith("BUILD_") for op in prelude)


def _refuse_shapes(facts: bytecode.CodeFacts, head: int, body: set[int], location: str) -> None:
    instructions = facts.instructions
    iterator_slot = facts.depth[head] - 1  # the async iterator, at the loop head
    for i in sorted(body):
        ins = instructions[i]
        if ins.opname in _ACCUMULATE and facts.depth[i] >= 0:
            # The container LIST_APPEND i (and friends) add to, as a stack
            # slot number: below the loop's own iterator means it outlives
            # the iterations, which is a comprehension's result list.
            popped = 2 if ins.opname == "MAP_ADD" else 1
            slot = facts.depth[i] - popped - (ins.arg or 0)
            if slot < iterator_slot:
                raise LoopShapeError(location, _COMPREHENSION, _COMPREHENSION_FIX)
    for effect in facts.effects:
        if effect.kind == YIELD and effect.offset in {instructions[i].offset for i in body}:
            raise LoopShapeError(
                location,
                "the loop body yields to a consumer (this is an async generator), and the "
                "consumer's progress is not checkpointed: after a resume it would miss the "
                "items yielded before the crash",
                "checkpoint the consumer's loop instead (`async for x in "
                "aiter_checkpointed(gen())` over the generator), or collect the items in "
                "a list inside a @resumable function",
            )


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
    target = getattr(ins_list[send], "jump_target", None) or ins_list[send].argval
    i = offsets.get(target, len(ins_list))
    names: set[str] = set()
    while i < len(ins_list):
        ins = ins_list[i]
        if ins.opname in {"END_SEND", "UNPACK_SEQUENCE", "UNPACK_EX", "NOT_TAKEN"}:
            pass
        elif ins.opname in {"STORE_FAST", "STORE_DEREF"}:
            names.add(str(ins.argval))
        elif ins.opname == "STORE_FAST_STORE_FAST":
            names.update(str(v) for v in ins.argval)
        else:
            break
        i += 1
    return names


def effects_in(site: LoopSite, kind: str) -> list[Effect]:
    return [e for e in site.effects if e.kind == kind]
