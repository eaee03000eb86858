"""A small abstract interpreter over CPython bytecode.

It walks a code object once and reports what happens to local variables:
which are rebound, which are mutated in place (method calls, item and
attribute stores), which nested functions are bound to which names, and the
control-flow graph (including exception edges). `loopsite` uses it to find a
loop body and its carried locals.

Checked against the compilers of CPython 3.11, 3.12 and 3.13. Stack tracking
is exact for the opcodes that matter (loads, stores, calls, subscripts,
attributes, COPY/SWAP); any other opcode is modelled by its net stack effect
with unknown results, which can only make the analysis forget where a value
came from, never invent an origin.
"""

from __future__ import annotations

import bisect
import dis
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import CodeType

# A value on the abstract stack: the local it derives from (x, x.attr, x[k]
# all derive from x), a code object (a function being built), or unknown.
Value = str | CodeType | None

UNCONDITIONAL_JUMPS = frozenset(
    {"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP", "JUMP_NO_INTERRUPT"}
)
TERMINAL = frozenset({"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"})
JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)

LOAD_LOCAL = frozenset(
    {"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_DEREF", "LOAD_FAST_AND_CLEAR", "LOAD_CLOSURE"}
)
STORE_LOCAL = frozenset({"STORE_FAST", "STORE_DEREF", "DELETE_FAST", "DELETE_DEREF"})
# Opcodes that consume their operands and push nothing.
NO_PUSH = frozenset(
    {
        "POP_TOP",
        "NOP",
        "RESUME",
        "PRECALL",
        "KW_NAMES",
        "EXTENDED_ARG",
        "CACHE",
        "COPY_FREE_VARS",
        "MAKE_CELL",
        "POP_EXCEPT",
        "RETURN_VALUE",
        "RETURN_CONST",
        "RAISE_VARARGS",
        "RERAISE",
        "END_FOR",
        "POP_ITER",
        "LIST_APPEND",
        "SET_ADD",
        "MAP_ADD",
        "LIST_EXTEND",
        "SET_UPDATE",
        "DICT_UPDATE",
        "DICT_MERGE",
        "SETUP_ANNOTATIONS",
        "STORE_GLOBAL",
        "STORE_NAME",
        "DELETE_GLOBAL",
        "DELETE_NAME",
        "IMPORT_STAR",
        "PRINT_EXPR",
        "CHECK_EXC_MATCH",
    }
    | UNCONDITIONAL_JUMPS
    | {name for name in dis.opname if name.startswith("POP_JUMP")}
)


@dataclass(frozen=True, slots=True)
class Mutation:
    """`name` is changed in place at `offset`: `kind` is "method" (with the
    method's name), "item" (x[k] = v, del x[k], slices) or "attr" (x.a = v)."""

    name: str
    offset: int
    kind: str
    method: str | None = None


@dataclass(slots=True)
class CodeFacts:
    """Everything the abstract interpreter learned about one code object."""

    instructions: list[dis.Instruction]
    index_of: dict[int, int]
    successors: list[list[int]]
    offsets: list[int]  # instruction offsets, ascending
    rebinds: list[tuple[str, int]] = field(default_factory=list)
    loads: list[tuple[str, int]] = field(default_factory=list)
    mutations: list[Mutation] = field(default_factory=list)
    functions: dict[str, CodeType] = field(default_factory=dict)  # name -> nested code
    made_functions: list[tuple[CodeType, int]] = field(default_factory=list)
    comprehension_names: set[str] = field(default_factory=set)
    uses: list[set[str]] = field(default_factory=list)  # per instruction
    defs: list[set[str]] = field(default_factory=list)
    _live_in: list[frozenset[str]] | None = None

    def live_at(self, index: int) -> frozenset[str]:
        """Fast locals whose current value may still be read from instruction
        `index` on (classic backward liveness over the CFG, exception edges
        included). Cell and free variables are not tracked: closures can read
        them at any time, so callers treat them as always live."""
        if self._live_in is None:
            self._live_in = _liveness(self)
        return self._live_in[index]

    def index_at_or_before(self, offset: int) -> int:
        """Index of the instruction containing `offset` (f_lasti can point into
        a CALL's inline cache entries on 3.11 and 3.12)."""
        # Called for every helper call inside an open loop (OpenLoop.active):
        # a binary search over the sorted offsets, not a scan.
        return max(0, bisect.bisect_right(self.offsets, offset) - 1)


_cache: dict[CodeType, CodeFacts] = {}


def facts(code: CodeType) -> CodeFacts:
    """Analyse `code` once; later calls return the cached result."""
    found = _cache.get(code)
    if found is None:
        found = _cache[code] = _analyse(code)
    return found


def _names(instruction: dis.Instruction) -> tuple[str, ...]:
    """The local names a (possibly fused, 3.13) instruction refers to."""
    value = instruction.argval
    if isinstance(value, tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def exception_entries(code: CodeType) -> list[tuple[int, int, int]]:
    """(start, end, handler) offsets of the 3.11+ exception table; `end` is
    exclusive. dis.Bytecode.exception_entries exists since 3.11 but typeshed
    does not declare it."""
    entries = getattr(dis.Bytecode(code), "exception_entries", [])
    return [(e.start, e.end, e.target) for e in entries]


def _graph(instructions: list[dis.Instruction], code: CodeType) -> list[list[int]]:
    index_of = {ins.offset: i for i, ins in enumerate(instructions)}
    successors: list[list[int]] = [[] for _ in instructions]
    for i, ins in enumerate(instructions):
        if ins.opcode in JUMPS and isinstance(ins.argval, int) and ins.argval in index_of:
            successors[i].append(index_of[ins.argval])
        falls_through = ins.opname not in UNCONDITIONAL_JUMPS and ins.opname not in TERMINAL
        if falls_through and i + 1 < len(instructions):
            successors[i].append(i + 1)
    for start, end, handler in exception_entries(code):
        target = index_of.get(handler)
        if target is None:
            continue
        for i, ins in enumerate(instructions):
            if start <= ins.offset < end:
                successors[i].append(target)
    return successors


def _block_starts(instructions: list[dis.Instruction], code: CodeType) -> set[int]:
    """Offsets where control can arrive from elsewhere: the abstract stack is
    reset there, because we do not merge states from several predecessors."""
    starts = {ins.argval for ins in instructions if ins.opcode in JUMPS}
    starts.update(handler for _, _, handler in exception_entries(code))
    return {s for s in starts if isinstance(s, int)}


def _analyse(code: CodeType) -> CodeFacts:
    instructions = [ins for ins in dis.get_instructions(code) if ins.opname != "CACHE"]
    result = CodeFacts(
        instructions=instructions,
        index_of={ins.offset: i for i, ins in enumerate(instructions)},
        successors=_graph(instructions, code),
        offsets=[ins.offset for ins in instructions],
    )
    starts = _block_starts(instructions, code)
    stack: list[Value] = []
    previous_terminal = False
    for ins in instructions:
        if ins.offset in starts or previous_terminal:
            stack = []
        loads, rebinds = len(result.loads), len(result.rebinds)
        _step(ins, stack, result)
        result.uses.append({name for name, _ in result.loads[loads:]})
        result.defs.append({name for name, _ in result.rebinds[rebinds:]})
        previous_terminal = ins.opname in UNCONDITIONAL_JUMPS or ins.opname in TERMINAL
    return result


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
            # STORE_FAST_LOAD_FAST (3.13) stores then loads, so a use of the
            # same name in one instruction still counts as live.
            new = frozenset((live_out - facts.defs[i]) | facts.uses[i])
            if new != live_in[i]:
                live_in[i] = new
                changed = True
    return live_in


def _pop(stack: list[Value], n: int = 1) -> list[Value]:
    """Pop n values (unknown when the tracked stack is shorter: we reset it
    at block starts and do not know what lies below)."""
    popped = [stack.pop() if stack else None for _ in range(n)]
    popped.reverse()
    return popped


def _peek(stack: list[Value], depth: int) -> Value:
    """The value `depth` places below the top (1 is the top)."""
    return stack[-depth] if len(stack) >= depth else None


def _local(value: Value) -> str | None:
    return value if isinstance(value, str) else None


def _step(ins: dis.Instruction, stack: list[Value], out: CodeFacts) -> None:
    op = ins.opname
    arg = ins.arg or 0
    if op in LOAD_LOCAL:
        name = str(ins.argval)
        out.loads.append((name, ins.offset))
        if op == "LOAD_FAST_AND_CLEAR":  # 3.12+ inlined comprehension saves its variable
            out.comprehension_names.add(name)
        stack.append(name)
    elif op == "LOAD_FAST_LOAD_FAST":  # 3.13
        for name in _names(ins):
            out.loads.append((name, ins.offset))
            stack.append(name)
    elif op in STORE_LOCAL:
        value = _pop(stack)[0] if op.startswith("STORE") else None
        name = str(ins.argval)
        out.rebinds.append((name, ins.offset))
        if isinstance(value, CodeType):
            out.functions[name] = value
    elif op == "STORE_FAST_STORE_FAST":  # 3.13: STORE_FAST a; STORE_FAST b
        for name in _names(ins):
            _pop(stack)
            out.rebinds.append((name, ins.offset))
    elif op == "STORE_FAST_LOAD_FAST":  # 3.13
        stored, loaded = _names(ins)
        _pop(stack)
        out.rebinds.append((stored, ins.offset))
        out.loads.append((loaded, ins.offset))
        stack.append(loaded)
    elif op == "LOAD_CONST":
        stack.append(ins.argval if isinstance(ins.argval, CodeType) else None)
    elif op == "LOAD_GLOBAL":
        if arg & 1:  # 3.11+: also pushes NULL for a call
            stack.append(None)
        stack.append(None)
    elif op == "LOAD_METHOD":  # 3.11
        owner = _pop(stack)[0]
        _note_method(owner, ins, out)
        stack.extend((None, None))
    elif op == "LOAD_ATTR":
        owner = _pop(stack)[0]
        if sys.version_info >= (3, 12) and arg & 1:  # method form: pushes method and self
            _note_method(owner, ins, out)
            stack.extend((None, None))
        else:
            stack.append(_local(owner))  # x.a derives from x
    elif op == "BINARY_SUBSCR":
        container, _key = _pop(stack, 2)
        stack.append(_local(container))  # x[k] derives from x
    elif op == "BINARY_SLICE":  # 3.12+
        container, _start, _stop = _pop(stack, 3)
        stack.append(_local(container))
    elif op == "STORE_SUBSCR":
        _value, container, _key = _pop(stack, 3)
        _note(container, ins, "item", out)
    elif op == "DELETE_SUBSCR":
        container, _key = _pop(stack, 2)
        _note(container, ins, "item", out)
    elif op == "STORE_SLICE":  # 3.12+
        _value, container, _start, _stop = _pop(stack, 4)
        _note(container, ins, "item", out)
    elif op == "STORE_ATTR":
        owner = _pop(stack, 2)[1]  # TOS is the object, TOS1 the value
        _note(owner, ins, "attr", out)
    elif op == "DELETE_ATTR":
        _note(_pop(stack)[0], ins, "attr", out)
    elif op == "COPY":
        stack.append(_peek(stack, arg))
    elif op == "SWAP":
        if len(stack) >= arg:
            stack[-1], stack[-arg] = stack[-arg], stack[-1]
        else:
            stack.clear()
    elif op == "PUSH_NULL":
        stack.append(None)
    elif op == "MAKE_FUNCTION":
        function_code = _pop(stack)[0]
        if sys.version_info < (3, 13):  # flags say how many extra operands it consumes
            _pop(stack, bin(arg & 0x0F).count("1"))
        if isinstance(function_code, CodeType):
            out.made_functions.append((function_code, ins.offset))
        stack.append(function_code)
    elif op == "SET_FUNCTION_ATTRIBUTE":  # 3.13: (value, function) -> function
        function_code = _pop(stack, 2)[1]
        stack.append(function_code)
    else:
        _generic(ins, stack)


def _generic(ins: dis.Instruction, stack: list[Value]) -> None:
    try:
        effect = dis.stack_effect(ins.opcode, ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None)
    except ValueError:  # pseudo or specialised opcodes dis cannot size
        stack.clear()
        return
    if ins.opname in NO_PUSH:
        _pop(stack, max(0, -effect))
    elif ins.opname.startswith("UNPACK"):
        _pop(stack)
        stack.extend([None] * (effect + 1))
    elif effect > 1:
        stack.extend([None] * effect)
    else:
        # Most remaining opcodes consume k operands and push one result
        # (BINARY_OP, CALL, BUILD_*, GET_ITER, ...), so k = 1 - effect.
        _pop(stack, 1 - effect)
        stack.append(None)


# Methods that read their receiver; calling them is not a mutation.
READ_ONLY_METHODS = frozenset(
    [
        "get",
        "keys",
        "values",
        "items",
        "copy",
        "count",
        "index",
        "find",
        "rfind",
        "startswith",
        "endswith",
        "format",
        "format_map",
        "join",
        "split",
        "rsplit",
        "splitlines",
        "strip",
        "lstrip",
        "rstrip",
        "lower",
        "upper",
        "casefold",
        "title",
        "capitalize",
        "encode",
        "decode",
        "replace",
        "partition",
        "rpartition",
        "zfill",
        "center",
        "ljust",
        "rjust",
        "isdigit",
        "isalpha",
        "isalnum",
        "isspace",
        "isupper",
        "islower",
        "isdecimal",
        "isnumeric",
        "isidentifier",
        "istitle",
        "isascii",
        "isprintable",
        "translate",
        "expandtabs",
        "removeprefix",
        "removesuffix",
        "issubset",
        "issuperset",
        "isdisjoint",
        "union",
        "intersection",
        "difference",
        "symmetric_difference",
        "hex",
        "fromhex",
        "bit_length",
        "bit_count",
        "to_bytes",
        "conjugate",
        "as_integer_ratio",
        "is_integer",
        "isoformat",
        "timestamp",
        "date",
        "time",
        "weekday",
        "strftime",
        "most_common",
        "elements",
        "total",
    ]
)


def _note_method(owner: Value, ins: dis.Instruction, out: CodeFacts) -> None:
    name = _local(owner)
    method = str(ins.argval)
    if name is not None and method not in READ_ONLY_METHODS:
        out.mutations.append(Mutation(name, ins.offset, "method", method))


def _note(owner: Value, ins: dis.Instruction, kind: str, out: CodeFacts) -> None:
    name = _local(owner)
    if name is not None:
        out.mutations.append(Mutation(name, ins.offset, kind))


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
