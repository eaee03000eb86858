"""An abstract interpreter over CPython bytecode, sound or silent never.

It walks a code object's control-flow graph (exception edges included) to a
fixpoint, following every value on the interpreter stack and in every local
as a `Val` (which locals or globals it may come from), and records each
`Effect` an instruction has: stores, calls, iterations, in-place operators,
values escaping into containers. `loopsite` reads these to find what a loop
body may change; `effects` decides at run time, with real types and callees,
which effects really change state.

Every opcode it meets must be modelled in `opcodes`, and each model is
checked against `dis.stack_effect` of the running CPython: an opcode it does
not know, or one whose stack effect differs from what its model assumes (a
new CPython changed it), raises `Unmodelled`, which the loop turns into a
refusal. It never guesses.

Checked against the compilers of CPython 3.11, 3.12, 3.13, 3.14 and 3.15
(tests/test_bytecode.py analyses every function of the standard library).
"""

from __future__ import annotations

import bisect
import dis
import heapq
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import CodeType

from resumable.runtime import analysis_cache, analysis_wire, opcodes
from resumable.runtime.absval import FRESH, Effect, Val, local, merge
from resumable.runtime.opcodes import Frame, Unmodelled

__all__ = ["CodeFacts", "Unmodelled", "exception_entries", "facts", "reachable", "reaching"]

# The newest CPython whose compiler this analysis was checked against. A newer
# one may emit bytecode that parses but means something else: refused.
NEWEST_CHECKED = (3, 15)


@dataclass(frozen=True, slots=True)
class _State:
    stack: tuple[Val, ...]
    env: dict[str, Val]  # never mutated once built


@dataclass(slots=True)
class CodeFacts:
    """What the abstract interpreter learned about one code object."""

    code: CodeType
    index_of: dict[int, int]
    successors: list[list[int]]
    offsets: list[int]  # instruction offsets, ascending
    depth: list[int]  # stack depth before each instruction (-1: unreachable)
    effects: list[Effect] = field(default_factory=list)
    uses: list[frozenset[str]] = field(default_factory=list)  # per instruction
    defs: list[frozenset[str]] = field(default_factory=list)  # must-defs (kills)
    may_defs: list[frozenset[str]] = field(default_factory=list)  # closures' nonlocal stores
    # Set when the code calls locals()/vars()/eval()/exec(): every local may
    # be read at any time.
    frame_escapes: bool = False
    # "@<offset>" (an async for's item) -> what its iterator derives from
    anext_sources: dict[str, Val] = field(default_factory=dict)
    # "%<offset>" (a call's result) -> its callee and arguments
    call_sources: dict[str, Val] = field(default_factory=dict)
    returns: Val = FRESH  # what the code may return (for its callers' analysis)
    # None when the facts came from the analysis cache: listed again on demand.
    _instructions: list[dis.Instruction] | None = None
    _live_in: list[frozenset[str]] | None = None
    _outer: list[Effect] | None = None

    @property
    def instructions(self) -> list[dis.Instruction]:
        """The code's instructions (without CACHE entries), one per offset."""
        if self._instructions is None:
            listed = _list_instructions(self.code)
            if [ins.offset for ins in listed] != self.offsets:
                # Cannot happen for an entry keyed on this very bytecode;
                # refused rather than trusted if it ever does.
                raise Unmodelled(
                    "analysis cache",
                    f"a cached analysis of {self.code.co_qualname} that does not match its "
                    "instructions (delete the analysis cache directory)",
                )
            self._instructions = listed
        return self._instructions

    @property
    def outer_effects(self) -> list[Effect]:
        """The effects that can matter to an enclosing frame or a caller:
        those touching a free variable, a parameter or a global (or holding a
        closure), without duplicates. A caller replays these, not all."""
        if self._outer is None:
            code = self.code
            count = code.co_argcount + code.co_kwonlyargcount
            count += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
            outer = set(code.co_freevars) | set(code.co_varnames[:count])
            seen: dict[tuple[object, ...], Effect] = {}
            for effect in self.effects:
                values = (effect.target, effect.callee, effect.into, *effect.args)
                if not any(
                    v is not None
                    and (
                        v.funcs
                        or any(t.is_global or t.is_pseudo or t.root in outer for t in v.tags)
                    )
                    for v in values
                ):
                    continue
                key = (
                    effect.kind,
                    effect.target,
                    effect.name,
                    effect.callee,
                    effect.args,
                    effect.kwnames,
                    effect.method,
                    effect.into,
                    effect.via,
                )
                seen.setdefault(key, effect)
            self._outer = list(seen.values())
        return self._outer

    def live_at(self, index: int) -> frozenset[str]:
        """Locals (fast and cell) whose current value may still be read from
        instruction `index` on: backward liveness over the CFG, exception
        edges included; a call to a closure reads the cells it captures."""
        if self._live_in is None:
            self._live_in = _liveness(self)
        return self._live_in[index]

    def index_at_or_before(self, offset: int) -> int:
        """Index of the instruction containing `offset` (f_lasti can point
        into a CALL's inline cache entries on 3.11 and 3.12)."""
        # Called for every helper call inside an open loop (OpenLoop.active):
        # a binary search over the sorted offsets, not a scan.
        return max(0, bisect.bisect_right(self.offsets, offset) - 1)

    def line_of(self, offset: int) -> int:
        ins = self.instructions[self.index_of.get(offset, self.index_at_or_before(offset))]
        line = ins.positions.lineno if ins.positions else None
        return line if line is not None else self.code.co_firstlineno


_cache: dict[CodeType, CodeFacts] = {}


def facts(code: CodeType) -> CodeFacts:
    """Analyse `code` once; later calls return the cached result, and other
    processes read it from the analysis cache (`analysis_cache`). Raises
    `Unmodelled` for bytecode the analysis does not model."""
    found = _cache.get(code)
    if found is None:
        check_version()  # before the disk cache too: a refusal is never cached
        found = analysis_wire.decode_facts(code, analysis_cache.read(code, "facts"))
        if found is None:
            found = _analyse(code)
            data = analysis_wire.encode_facts(found)
            if data is not None:
                analysis_cache.write(code, "facts", "", data)
        _cache[code] = found
    return found


def check_version() -> None:
    if sys.version_info[:2] > NEWEST_CHECKED:
        raise Unmodelled(
            f"CPython {sys.version_info[0]}.{sys.version_info[1]}",
            "this CPython is newer than the newest one the bytecode analysis was checked "
            f"against ({NEWEST_CHECKED[0]}.{NEWEST_CHECKED[1]}); its bytecode may mean "
            "something the analysis would misread",
        )


def exception_entries(code: CodeType) -> list[tuple[int, int, int, int, bool]]:
    """(start, end, handler, depth, lasti) of the 3.11+ exception table;
    `end` is exclusive. dis.Bytecode.exception_entries exists since 3.11 but
    typeshed does not declare it."""
    entries = getattr(dis.Bytecode(code), "exception_entries", [])
    return [(e.start, e.end, e.target, e.depth, e.lasti) for e in entries]


def _jump_target(ins: dis.Instruction) -> int | None:
    if opcodes.control(ins.opname) not in (opcodes.FLOW_JUMP, opcodes.FLOW_BRANCH):
        return None
    target = getattr(ins, "jump_target", None)  # 3.13+
    if target is None and isinstance(ins.argval, int):
        target = ins.argval
    return target


def _list_instructions(code: CodeType) -> list[dis.Instruction]:
    return [ins for ins in dis.get_instructions(code) if ins.opname != "CACHE"]


def _analyse(code: CodeType) -> CodeFacts:
    check_version()
    instructions = _list_instructions(code)
    index_of = {ins.offset: i for i, ins in enumerate(instructions)}
    count = len(instructions)
    successors: list[list[int]] = [[] for _ in instructions]
    branch_to: list[int | None] = [None] * count
    for i, ins in enumerate(instructions):
        opcodes.check_known(ins)
        flow = opcodes.control(ins.opname)
        target = _jump_target(ins)
        if target is not None:
            if target not in index_of:
                raise Unmodelled(ins.opname, f"a jump to offset {target}, which is no instruction")
            branch_to[i] = index_of[target]
            successors[i].append(index_of[target])
        if flow not in (opcodes.FLOW_JUMP, opcodes.FLOW_STOP) and i + 1 < count:
            successors[i].append(i + 1)
    handlers: list[list[tuple[int, int, bool]]] = [[] for _ in instructions]
    for start, end, handler, depth, lasti in exception_entries(code):
        target = index_of.get(handler)
        if target is None:
            raise Unmodelled("exception table", f"a handler at offset {handler}")
        for i, ins in enumerate(instructions):
            if start <= ins.offset < end:
                handlers[i].append((target, depth, lasti))
                if target not in successors[i]:
                    successors[i].append(target)

    result = CodeFacts(
        code=code,
        _instructions=instructions,
        index_of=index_of,
        successors=successors,
        offsets=[ins.offset for ins in instructions],
        depth=[-1] * count,
    )
    frame = Frame(code, instructions)
    in_states: list[_State | None] = [None] * count
    in_states[0] = _State((), {})
    # Lowest offset first: most of a function is visited once, loops again
    # until their states stop growing.
    todo = [0]
    queued = {0}
    while todo:
        i = heapq.heappop(todo)
        queued.discard(i)
        state = in_states[i]
        assert state is not None
        ins = instructions[i]
        stack = list(state.stack)
        jump_stack, env = opcodes.step(frame, i, stack, state.env, None)
        outs: list[tuple[int, tuple[Val, ...], dict[str, Val]]] = []
        target = branch_to[i]
        if target is not None:
            outs.append((target, tuple(jump_stack if jump_stack is not None else stack), env))
        flow = opcodes.control(ins.opname)
        if flow not in (opcodes.FLOW_JUMP, opcodes.FLOW_STOP) and i + 1 < count:
            outs.append((i + 1, tuple(stack), env))
        if handlers[i]:
            # The handler may run before or after this instruction's changes
            # to the locals; what lies below `depth` is not touched by it.
            either = _merge_env(state.env, env)
            for handler, depth, lasti in handlers[i]:
                if depth > len(state.stack):
                    # The compiler merges table ranges over instructions that
                    # cannot raise (3.15: a generator's final LOAD_CONST and
                    # RETURN_VALUE sit inside a depth-2 range with an empty
                    # stack). CPython could not unwind such an instruction to
                    # that depth, so it never raises there.
                    continue
                extra = (FRESH, FRESH) if lasti else (FRESH,)
                outs.append((handler, state.stack[:depth] + extra, either))
        for successor, out_stack, out_env in outs:
            changed = _join(in_states, successor, out_stack, out_env, instructions)
            if changed and successor not in queued:
                heapq.heappush(todo, successor)
                queued.add(successor)

    # Final pass on the converged states: record effects, uses and defs.
    recorder = opcodes.Recorder()
    for i in range(count):
        state = in_states[i]
        recorder.begin()
        if state is not None:
            result.depth[i] = len(state.stack)
            opcodes.step(frame, i, list(state.stack), state.env, recorder)
        result.uses.append(frozenset(recorder.uses))
        result.defs.append(frozenset(recorder.defs))
        result.may_defs.append(frozenset(recorder.may_defs))
        result.effects.extend(recorder.effects)
    result.frame_escapes = frame.frame_escapes
    result.anext_sources = frame.anext_sources
    result.call_sources = frame.call_sources
    result.returns = frame.returns
    return result


def _merge_env(a: dict[str, Val], b: dict[str, Val]) -> dict[str, Val]:
    if a is b:
        return a
    merged = dict(a)
    for name, value in b.items():
        mine = merged.get(name)
        merged[name] = value if mine is None else merge(mine, value)
    for name, value in a.items():
        if name not in b:
            merged[name] = merge(value, local(name))
    return merged


def _join(
    states: list[_State | None],
    target: int,
    stack: tuple[Val, ...],
    env: dict[str, Val],
    instructions: list[dis.Instruction],
) -> bool:
    """Merge an incoming state into `target`'s; True if it changed."""
    old = states[target]
    if old is None:
        states[target] = _State(stack, env)
        return True
    if len(old.stack) != len(stack):
        ins = instructions[target]
        raise Unmodelled(
            ins.opname,
            f"paths reaching offset {ins.offset} with {len(old.stack)} and {len(stack)} "
            "stack items (a stack shape the analysis cannot follow)",
        )
    new_stack = (
        old.stack
        if old.stack == stack
        else tuple(merge(a, b) for a, b in zip(old.stack, stack, strict=True))
    )
    new_env = old.env
    for name in () if env is old.env else env.keys() | old.env.keys():
        mine, theirs = old.env.get(name), env.get(name)
        merged = merge(mine or local(name), theirs or local(name))
        if merged != mine:
            if new_env is old.env:
                new_env = dict(old.env)
            new_env[name] = merged
    if new_stack == old.stack and new_env is old.env:
        return False
    states[target] = _State(new_stack, new_env)
    return True


def _liveness(facts: CodeFacts) -> list[frozenset[str]]:
    count = len(facts.instructions)
    live_in: list[frozenset[str]] = [frozenset()] * count
    changed = True
    while changed:  # converges in a few passes: the sets only grow
        changed = False
        for i in range(count - 1, -1, -1):
            live_out: set[str] = set()
            for nxt in facts.successors[i]:
                live_out |= live_in[nxt]
            # STORE_FAST_LOAD_FAST (3.13+) stores then loads, and
            # LOAD_FAST_AND_CLEAR reads then clears: a use of a name in the
            # same instruction as its def still counts as live.
            new = frozenset((live_out - facts.defs[i]) | facts.uses[i])
            if new != live_in[i]:
                live_in[i] = new
                changed = True
    return live_in


def reachable(
    successors: list[list[int]], start: int, *, blocked: frozenset[int] = frozenset()
) -> set[int]:
    """Indices reachable from `start` without entering `blocked`."""
    seen = {start}
    todo = [start]
    while todo:
        for nxt in successors[todo.pop()]:
            if nxt not in seen and nxt not in blocked:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def reaching(successors: list[list[int]], target: int, within: set[int]) -> set[int]:
    """Indices in `within` from which `target` can be reached inside `within`."""
    predecessors: dict[int, list[int]] = {}
    for i in within:
        for nxt in successors[i]:
            if nxt in within:
                predecessors.setdefault(nxt, []).append(i)
    seen = {target}
    todo = [target]
    while todo:
        for prev in predecessors.get(todo.pop(), ()):
            if prev not in seen:
                seen.add(prev)
                todo.append(prev)
    return seen


def nested_code(code: CodeType) -> Iterator[CodeType]:
    """Code objects of functions defined inside `code`, at any depth."""
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield const
            yield from nested_code(const)
