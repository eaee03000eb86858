"""What each CPython opcode does to the abstract stack and locals.

One transfer function per opcode family. Every model states how many values
it pops and pushes; `step` checks that against `dis.stack_effect` of the
running interpreter before trusting it, so an opcode whose arity changed in
a new CPython is refused (`Unmodelled`), never misread. Pseudo-instructions
and instrumented opcodes never appear in a code object's `co_code` and are
refused too.

Calling conventions differ per version and are handled here, in one place:

* 3.11: PRECALL n + CALL n; LOAD_METHOD; `LOAD_GLOBAL (NULL + f)` pushes the
  NULL below the callable; KW_NAMES before PRECALL.
* 3.12: CALL n; LOAD_ATTR with the method flag; NULL below; KW_NAMES.
* 3.13+: `LOAD_GLOBAL (f + NULL)` pushes the NULL above the callable;
  CALL_KW with the names tuple on top; MAKE_FUNCTION takes only the code and
  SET_FUNCTION_ATTRIBUTE adds closures and defaults; LOAD_FAST_LOAD_FAST and
  friends.
* 3.14: LOAD_FAST_BORROW*, LOAD_SMALL_INT, LOAD_SPECIAL (with statements),
  BINARY_OP [] instead of BINARY_SUBSCR, POP_ITER, CALL_FUNCTION_EX always
  with a kwargs slot.
* 3.15: GET_ITER pushes the iterator and an index slot (FOR_ITER reads two
  slots, POP_ITER pops both).
Checked on 3.11.7, 3.12.1, 3.13.0, 3.14.10 and 3.15.2.
"""

from __future__ import annotations

import dis
import sys
from collections.abc import Callable
from types import CodeType
from typing import Any

from resumable.runtime.absval import (
    AWAIT,
    CALL,
    ESCAPE,
    FRESH,
    GLOBAL_STORE,
    INPLACE,
    ITERATE,
    NULL,
    STORE,
    SUBSCRIPT,
    YIELD,
    AnextItem,
    Effect,
    Tag,
    Val,
    derived,
    global_,
    local,
    merge,
    union,
)

VERSION = sys.version_info[:2]


class Unmodelled(Exception):
    """The analysis met bytecode it does not model; it refuses rather than guess."""

    def __init__(self, opname: str, detail: str) -> None:
        self.opname = opname
        self.detail = detail
        super().__init__(f"{opname}: {detail}")


# -- control flow ---------------------------------------------------------------

FLOW_NONE = "none"  # falls through only
FLOW_BRANCH = "branch"  # falls through or jumps
FLOW_JUMP = "jump"  # always jumps
FLOW_STOP = "stop"  # returns or raises

_JUMPS = frozenset(
    {"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "JUMP", "JUMP_NO_INTERRUPT"}
)
_STOPS = frozenset({"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS", "RERAISE"})
_BRANCHES = frozenset(
    {
        "FOR_ITER",
        "SEND",
        "POP_JUMP_IF_FALSE",
        "POP_JUMP_IF_TRUE",
        "POP_JUMP_IF_NONE",
        "POP_JUMP_IF_NOT_NONE",
        "POP_JUMP_FORWARD_IF_FALSE",
        "POP_JUMP_FORWARD_IF_TRUE",
        "POP_JUMP_FORWARD_IF_NONE",
        "POP_JUMP_FORWARD_IF_NOT_NONE",
        "POP_JUMP_BACKWARD_IF_FALSE",
        "POP_JUMP_BACKWARD_IF_TRUE",
        "POP_JUMP_BACKWARD_IF_NONE",
        "POP_JUMP_BACKWARD_IF_NOT_NONE",
        "JUMP_IF_FALSE_OR_POP",
        "JUMP_IF_TRUE_OR_POP",
    }
)


def control(opname: str) -> str:
    if opname in _JUMPS:
        return FLOW_JUMP
    if opname in _STOPS:
        return FLOW_STOP
    if opname in _BRANCHES:
        return FLOW_BRANCH
    # END_ASYNC_FOR is in dis.hasjrel on 3.14+ (its argument points back at
    # the SEND for instrumentation) but never jumps: it is reached only by
    # the exception that ends an async for.
    return FLOW_NONE


# -- the frame being analysed ------------------------------------------------------


class Frame:
    """Facts about the code object that transfer functions need."""

    def __init__(self, code: CodeType, instructions: list[dis.Instruction]) -> None:
        self.code = code
        self.instructions = instructions
        self.cells = frozenset(code.co_cellvars) | frozenset(code.co_freevars)
        self.frame_escapes = False
        self.is_generator = bool(code.co_flags & 0x20)  # CO_GENERATOR (sync generators)
        # "@<offset>" -> what the async iterator at that GET_ANEXT derives from
        self.anext_sources: dict[str, Val] = {}
        # "%<offset>" -> what the call at that offset was given (callee and args)
        self.call_sources: dict[str, Val] = {}
        self.returns = FRESH  # what the code may return

    def kwnames(self, index: int) -> tuple[str, ...]:
        """Keyword names of the call at `index` (KW_NAMES before it on
        3.11/3.12; a constant tuple loaded just before CALL_KW on 3.13+)."""
        for back in (1, 2):
            if index - back < 0:
                break
            ins = self.instructions[index - back]
            if ins.opname == "KW_NAMES" or (
                ins.opname == "LOAD_CONST" and self.instructions[index].opname == "CALL_KW"
            ):
                value = ins.argval
                if ins.opname == "KW_NAMES" and not isinstance(value, tuple):
                    # 3.11/3.12 dis gives the constant's index, not the tuple.
                    value = self.code.co_consts[ins.arg or 0]
                if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                    return value
                return ()
        return ()


class Recorder:
    """Collects what the final pass learns, instruction by instruction."""

    def __init__(self) -> None:
        self.effects: list[Effect] = []
        self.uses: set[str] = set()
        self.defs: set[str] = set()
        self.may_defs: set[str] = set()

    def begin(self) -> None:
        self.effects = []
        self.uses = set()
        self.defs = set()
        self.may_defs = set()


Stack = list[Val]
Env = dict[str, Val]
# A transfer function: (frame, index, instruction, stack, env, recorder) ->
# the stack on the jump edge when it differs from the fall-through one.
Transfer = Callable[[Frame, int, dis.Instruction, Stack, Env, "Recorder | None"], "Stack | None"]


def _arg(ins: dis.Instruction) -> int:
    return ins.arg if ins.arg is not None else 0


_effect_cache: dict[tuple[int, int | None, bool], int] = {}


def _stack_effect(ins: dis.Instruction, jump: bool) -> int:
    arg = ins.arg if ins.opcode >= dis.HAVE_ARGUMENT else None
    key = (ins.opcode, arg, jump)
    found = _effect_cache.get(key)
    if found is None:
        try:
            found = dis.stack_effect(ins.opcode, arg, jump=jump)
        except ValueError as exc:
            raise Unmodelled(ins.opname, f"dis.stack_effect does not know it ({exc})") from None
        _effect_cache[key] = found
    return found


def _pop(stack: Stack, n: int, ins: dis.Instruction) -> list[Val]:
    if n < 0 or n > len(stack):
        raise Unmodelled(ins.opname, f"it would pop {n} of {len(stack)} stack items")
    if n == 0:
        return []
    popped = stack[-n:]
    del stack[-n:]
    return popped


def _names(ins: dis.Instruction) -> tuple[str, ...]:
    value = ins.argval
    if isinstance(value, tuple):
        return tuple(str(v) for v in value)
    return (str(value),)


def _get(env: Env, name: str) -> Val:
    found = env.get(name)
    return found if found is not None else local(name)


def _record(rec: Recorder | None, effect: Effect) -> None:
    if rec is not None:
        rec.effects.append(effect)


def step(
    frame: Frame, index: int, stack: Stack, env: Env, rec: Recorder | None
) -> tuple[Stack | None, Env]:
    """Apply instruction `index` to `stack` (in place) for the fall-through
    edge. Returns the jump edge's stack when it differs, and the locals after
    it: `env` itself when the instruction binds no name (states share their
    locals until one changes them)."""
    ins = frame.instructions[index]
    transfer = _TRANSFERS.get(ins.opname)
    if transfer is None:
        raise Unmodelled(ins.opname, "an opcode the analysis does not model")
    if ins.opname in _BINDS:
        env = dict(env)
    before = len(stack)
    jump_stack = transfer(frame, index, ins, stack, env, rec)
    if control(ins.opname) == FLOW_STOP or ins.opname == "RETURN_GENERATOR":
        return None, env
    expected = _stack_effect(ins, jump=False)
    if len(stack) - before != expected:
        raise Unmodelled(
            ins.opname,
            f"its model changes the stack by {len(stack) - before}, but this CPython's "
            f"dis.stack_effect says {expected}",
        )
    if jump_stack is not None:
        expected = _stack_effect(ins, jump=True)
        if len(jump_stack) - before != expected:
            raise Unmodelled(
                ins.opname,
                f"on its jump its model changes the stack by {len(jump_stack) - before}, "
                f"but this CPython's dis.stack_effect says {expected}",
            )
    return jump_stack, env


def check_known(ins: dis.Instruction) -> None:
    if ins.opname not in _TRANSFERS:
        raise Unmodelled(ins.opname, "an opcode the analysis does not model")


# -- transfer functions -------------------------------------------------------------


def _nop(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    return None


def _pop_all(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    """Consumes its operands, pushes nothing, changes nothing we track."""
    _pop(stack, -_stack_effect(ins, jump=False), ins)


def _fresh_result(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    """Consumes its operands and pushes one new value holding none of them
    (a bool, a number, a formatted string)."""
    _pop(stack, 1 - _stack_effect(ins, jump=False), ins)
    stack.append(FRESH)


_BUILT = {
    "BUILD_TUPLE": tuple,
    "BUILD_LIST": list,
    "BUILD_SET": set,
    "BUILD_MAP": dict,
    "BUILD_CONST_KEY_MAP": dict,
    "LIST_TO_TUPLE": tuple,
}


def _combine(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    """Consumes its operands and pushes one value that may hold them (a new
    tuple/list/dict/slice, an intrinsic's result)."""
    popped = _pop(stack, 1 - _stack_effect(ins, jump=False), ins)
    value = derived(*popped)
    stack.append(Val(value.tags, value.funcs, kind=_BUILT.get(ins.opname)))


def _push_fresh(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    stack.append(FRESH)


def _load_const(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    value = ins.argval
    stack.append(Val(funcs=frozenset({value})) if isinstance(value, CodeType) else FRESH)


def _load_local(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    for name in _names(ins):
        if rec is not None:
            rec.uses.add(name)
        stack.append(_get(env, name))


def _load_and_clear(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # 3.12+ inlined comprehensions save a name they reuse and restore it after.
    name = str(ins.argval)
    if rec is not None:
        rec.uses.add(name)
        rec.defs.add(name)
    stack.append(_get(env, name))
    env[name] = FRESH


def _bind(name: str, value: Val, env: Env, rec: Recorder | None) -> None:
    if rec is not None:
        rec.defs.add(name)
    # Loading `name` later gives the object stored now (it may alias `value`'s
    # roots) and is also that name's own object.
    # Tags of the same name are dropped: the name's object is its own root
    # (`items = [*items, x]` makes a new root object, holding old items).
    others = frozenset(t for t in value.tags if t.root != name)
    env[name] = Val(local(name).tags | others, value.funcs, ("L", name), kind=value.kind)


def _store_local(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (value,) = _pop(stack, 1, ins)
    _bind(str(ins.argval), value, env, rec)


def _store_store(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    first, second = _names(ins)  # the first name takes the top of the stack
    top = _pop(stack, 1, ins)[0]
    below = _pop(stack, 1, ins)[0]
    _bind(first, top, env, rec)
    _bind(second, below, env, rec)


def _store_load(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    stored, loaded = _names(ins)
    (value,) = _pop(stack, 1, ins)
    _bind(stored, value, env, rec)
    if rec is not None:
        rec.uses.add(loaded)
    stack.append(_get(env, loaded))


def _delete_local(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    name = str(ins.argval)
    if rec is not None:
        rec.defs.add(name)
    env[name] = FRESH


_FRAME_ESCAPES = frozenset({"locals", "vars", "eval", "exec"})


def _load_global(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    name = str(ins.argval)
    if name in _FRAME_ESCAPES:
        frame.frame_escapes = True
    value = global_(name)
    if ins.opname == "LOAD_GLOBAL" and _arg(ins) & 1:
        # The NULL of the calling convention: below the callable until 3.12,
        # above it from 3.13.
        stack.extend((NULL, value) if VERSION < (3, 13) else (value, NULL))
    else:
        stack.append(value)


def _load_from_dict_or(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # Class bodies (3.12+): LOAD_FROM_DICT_OR_GLOBALS / _OR_DEREF pop the mapping.
    _pop(stack, 1, ins)
    name = str(ins.argval)
    if ins.opname == "LOAD_FROM_DICT_OR_DEREF":
        if rec is not None:
            rec.uses.add(name)
        stack.append(_get(env, name))
    else:
        stack.append(global_(name))


def _store_global(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    name = str(ins.argval)
    target = global_(name)
    if ins.opname in ("STORE_GLOBAL", "STORE_NAME"):
        (value,) = _pop(stack, 1, ins)
        _escape(frame, i, value, target, rec, stack_env=env)
    _record(rec, Effect(ins.offset, GLOBAL_STORE, target, name=name))


def _method_pair(owner: Val, name: str) -> tuple[Val, Val]:
    """What obj.name pushes for a call: the method (reached by path) and self."""
    return owner.child(name), owner


def _load_attr(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (owner,) = _pop(stack, 1, ins)
    name = str(ins.argval)
    method = ins.opname == "LOAD_METHOD" or (
        ins.opname == "LOAD_ATTR" and VERSION >= (3, 12) and _arg(ins) & 1
    )
    if method:
        stack.extend(_method_pair(owner, name))
    else:
        stack.append(owner.child(name))


def _load_super_attr(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    _super, _cls, owner = _pop(stack, 3, ins)
    name = str(ins.argval)
    if _arg(ins) & 1:
        stack.extend(_method_pair(Val(owner.tags, owner.funcs), name))
    else:
        stack.append(owner.child(name))


def _load_special(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # 3.14+: `with`/`async with` load __enter__/__exit__ (and the async ones)
    # as a method of the manager; the CALL that follows records the effect.
    (owner,) = _pop(stack, 1, ins)
    name = ins.argrepr or str(ins.argval)
    stack.extend(_method_pair(owner, name))


def _before_with(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # <=3.13: pops the manager, calls __enter__/__aenter__ on it, pushes
    # (__exit__, enter's result).
    (manager,) = _pop(stack, 1, ins)
    name = "__aenter__" if ins.opname == "BEFORE_ASYNC_WITH" else "__enter__"
    method = manager.child(name)
    _record(
        rec,
        Effect(ins.offset, CALL, method, name=name, callee=method, args=(manager,), method=True),
    )
    stack.extend((manager.child("__exit__"), derived(manager)))


def _with_except_start(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # Calls the manager's __exit__ (already counted at __enter__) and pushes
    # its result; nothing below is consumed.
    stack.append(FRESH)


def _store_attr(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    if ins.opname == "DELETE_ATTR":
        (owner,) = _pop(stack, 1, ins)
        name = "del ." + str(ins.argval)
    else:
        value, owner = _pop(stack, 2, ins)  # obj.name = value: obj on top
        _escape(frame, i, value, owner, rec, stack_env=env)
        name = "." + str(ins.argval)
    _record(rec, Effect(ins.offset, STORE, owner, name=name))


def _store_subscr(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    if ins.opname == "DELETE_SUBSCR":
        container, _key = _pop(stack, 2, ins)
        name = "del []"
    elif ins.opname == "STORE_SLICE":
        value, container, _start, _stop = _pop(stack, 4, ins)
        _escape(frame, i, derived(value.child()), container, rec, stack_env=env)
        name = "[:]"
    else:
        value, container, _key = _pop(stack, 3, ins)  # container[key] = value
        _escape(frame, i, value, container, rec, stack_env=env)
        name = "[]"
    _record(rec, Effect(ins.offset, STORE, container, name=name))


def _subscript(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    container, _key = _pop(stack, 2, ins)
    _record(rec, Effect(ins.offset, SUBSCRIPT, container))
    stack.append(container.child())


def _slice(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    container, _start, _stop = _pop(stack, 3, ins)
    # A new sequence holding the container's items (or, for numpy, a view of
    # it: the run time treats such containers as opaque).
    stack.append(derived(container.child()))


_NB_OPS: list[tuple[str, str]] = list(getattr(dis, "_nb_ops", []))


def _binary_op(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    left, right = _pop(stack, 2, ins)
    arg = _arg(ins)
    if arg >= len(_NB_OPS):
        raise Unmodelled(ins.opname, f"operator number {arg}, unknown to dis._nb_ops")
    name, symbol = _NB_OPS[arg]
    if name == "NB_SUBSCR":  # 3.14+: x[k] is BINARY_OP []
        _record(rec, Effect(ins.offset, SUBSCRIPT, left))
        stack.append(left.child())
    elif name.startswith("NB_INPLACE_"):
        # A mutable left operand is changed and returned; an immutable one
        # gives a new value.
        _record(rec, Effect(ins.offset, INPLACE, left, name=symbol))
        _escape(frame, i, derived(right.child()), left, rec, stack_env=env)
        stack.append(union(Val(left.tags, left.funcs), derived(left, right)))
    elif symbol in _NUMERIC_ONLY:
        # Quotients, remainders, powers and shifts are new numbers (or new
        # strings for str % args, new arrays for numpy): they hold no object
        # of their operands.
        stack.append(FRESH)
    else:
        # A new object (sum, concatenation, union...) that may hold the
        # operands' items, never the operands themselves.
        stack.append(derived(left.child(), right.child()))


_NUMERIC_ONLY = frozenset({"%", "//", "/", "**", "<<", ">>"})


def _contains(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    _item, container = _pop(stack, 2, ins)
    _record(rec, Effect(ins.offset, ITERATE, container, name="in"))
    stack.append(FRESH)


def _copy(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    n = _arg(ins)
    if n < 1 or n > len(stack):
        raise Unmodelled(ins.opname, f"COPY {n} of {len(stack)} stack items")
    stack.append(stack[-n])


def _swap(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    n = _arg(ins)
    if n < 2 or n > len(stack):
        raise Unmodelled(ins.opname, f"SWAP {n} of {len(stack)} stack items")
    stack[-1], stack[-n] = stack[-n], stack[-1]


def _push_null(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    stack.append(NULL)


def _list_add(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # LIST_APPEND/SET_ADD i: append TOS to the container i deep (after the
    # pop); MAP_ADD i: key and value. The extend/update/merge family iterates
    # its operand into the container.
    count = 2 if ins.opname == "MAP_ADD" else 1
    values = _pop(stack, count, ins)
    depth = _arg(ins)
    if depth < 1 or depth > len(stack):
        raise Unmodelled(ins.opname, f"a container {depth} deep in {len(stack)} stack items")
    if ins.opname in ("LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE", "DICT_MERGE"):
        _record(rec, Effect(ins.offset, ITERATE, values[0], name="*"))
        added = derived(values[0].child())
    else:
        added = derived(*values)
    # The container is a stack temporary (a display or comprehension being
    # built): it carries what it holds in its own tags from here on.
    if rec is not None:
        for code in added.funcs:
            _closure_effects(frame, ins, env, rec, code, (), known_args=False)
    stack[-depth] = union(stack[-depth], added)


def _unpack(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (sequence,) = _pop(stack, 1, ins)
    _record(rec, Effect(ins.offset, ITERATE, sequence, name="unpack"))
    count = 1 + _stack_effect(ins, jump=False)
    item = sequence.child()
    if ins.opname == "UNPACK_EX":
        # The starred target is a new list of items: only "at least" deep.
        item = derived(item)
    stack.extend([item] * count)


# 3.15: GET_ITER pushes the iterator and an index slot; FOR_ITER reads both.
def _iter_slots() -> int:
    op = dis.opmap.get("GET_ITER")
    if op is None:
        raise Unmodelled("GET_ITER", "missing from dis.opmap")
    arg = 0 if op >= dis.HAVE_ARGUMENT else None
    return 1 + dis.stack_effect(op, arg)


ITER_SLOTS = _iter_slots()


def _get_iter(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (iterable,) = _pop(stack, 1, ins)
    _record(rec, Effect(ins.offset, ITERATE, iterable, name="for"))
    pushes = 1 + _stack_effect(ins, jump=False)
    # iter(it) is it for an iterator: keep the tags as they are.
    stack.append(Val(iterable.tags, iterable.funcs))
    stack.extend([FRESH] * (pushes - 1))


def _get_aiter(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (iterable,) = _pop(stack, 1, ins)
    _record(rec, Effect(ins.offset, ITERATE, iterable, name="async for"))
    stack.append(Val(iterable.tags, iterable.funcs))


def _get_anext(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    if not stack:
        raise Unmodelled(ins.opname, "no async iterator on the stack")
    root = f"@{ins.offset}"
    if rec is not None:
        frame.anext_sources[root] = derived(stack[-1])
    stack.append(Val(frozenset({Tag(root)}), kind=AnextItem))


def _for_iter(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> Stack:
    if len(stack) < ITER_SLOTS:
        raise Unmodelled(ins.opname, "no iterator on the stack")
    iterator = stack[-ITER_SLOTS]
    jump = list(stack)
    if _stack_effect(ins, jump=True) < 0:  # 3.11: the exhausted iterator is popped
        jump.pop()
    else:  # 3.12+: a dummy value for END_FOR to pop
        jump.append(FRESH)
    stack.append(iterator.child())
    return jump


def _get_awaitable(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (awaitable,) = _pop(stack, 1, ins)
    if awaitable:
        _record(rec, Effect(ins.offset, AWAIT, awaitable))
    stack.append(Val(awaitable.tags, awaitable.funcs))


def _send(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> Stack:
    # The awaited (or yielded-from) object sits below the sent value; 3.15
    # keeps a NULL slot between them: the result derives from both slots.
    below = stack[-3:-1]
    receiver, _value = _pop(stack, 2, ins)
    items = [v for v in below if v.kind is AnextItem]
    result = Val(items[0].tags) if items else derived(*below)
    # 3.11 pops the receiver when the awaited object returns.
    jump = [*stack, result] if _stack_effect(ins, jump=True) < 0 else [*stack, receiver, result]
    stack.extend((receiver, result))
    return jump


def _yield_value(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (value,) = _pop(stack, 1, ins)
    previous = frame.instructions[i - 1].opname if i else ""
    if frame.is_generator and previous != "SEND":
        # A generator's own `yield x`: x leaves for the consumer, which may
        # change it. (In coroutines every YIELD_VALUE belongs to an await.)
        _record(rec, Effect(ins.offset, YIELD, value))
    stack.append(FRESH)


def _end_send(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # (receiver[, NULL on 3.15], value) -> value
    popped = _pop(stack, 1 - _stack_effect(ins, jump=False), ins)
    stack.append(popped[-1])


def _cleanup_throw(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    _pop(stack, 3, ins)
    stack.extend((FRESH, FRESH))


def _push_exc_info(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (exc,) = _pop(stack, 1, ins)
    stack.extend((FRESH, exc))


def _check_match(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    _pop(stack, 2, ins)
    stack.extend((FRESH, FRESH))


def _stop(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # Return/raise: nothing after it in this frame. What a function returns
    # is kept for its callers' analysis (does it give back an argument?).
    if rec is not None and ins.opname == "RETURN_VALUE" and stack:
        frame.returns = merge(frame.returns, Val(stack[-1].tags, stack[-1].funcs))


def _return_generator(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    # The frame resumes with the first sent value on the stack (the POP_TOP
    # that follows drops it). dis.stack_effect says 0 on 3.11 and 3.12 and 1
    # from 3.13, for the same behaviour: `step` lets this one through.
    stack.append(FRESH)


def _jump_or_pop(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> Stack:
    # 3.11: JUMP_IF_TRUE_OR_POP keeps the value on the jump, pops it otherwise.
    jump = list(stack)
    _pop(stack, 1, ins)
    return jump


def _make_function(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    popped = _pop(stack, 1 - _stack_effect(ins, jump=False), ins)
    code = popped[-1]  # the code object is on top; 3.11/3.12 flags add operands below
    # A closure holds its cells (and defaults): calling it, or anything that
    # holds it, may reach what they hold.
    holds = derived(*popped[:-1])
    stack.append(Val(holds.tags, code.funcs))


def _set_function_attribute(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    value, function = _pop(stack, 2, ins)  # 3.13+: (attribute, function) -> function
    stack.append(union(function, derived(value)))


def _call(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    name = ins.opname
    if name == "CALL" and VERSION < (3, 12):
        # 3.11: PRECALL did the work and left (NULL, result).
        _null, result = _pop(stack, 2, ins)
        stack.append(result)
        return
    if name == "CALL_FUNCTION_EX":
        popped = _pop(stack, 1 - _stack_effect(ins, jump=False), ins)
        first, second, *containers = popped
        args = tuple(derived(c.child()) for c in containers if not c.null)
        stack.append(_do_call(frame, i, ins, env, rec, first, second, args, ()))
        return
    argc = _arg(ins)
    kwnames = frame.kwnames(i)
    total = argc + 2 + (1 if name == "CALL_KW" else 0)
    popped = _pop(stack, total, ins)
    first, second, *rest = popped
    if name == "CALL_KW":
        rest = rest[:-1]  # the names tuple
    result = _do_call(frame, i, ins, env, rec, first, second, tuple(rest), kwnames)
    if name == "PRECALL":  # 3.11: CALL n follows and pops (NULL, result)
        stack.extend((NULL, result))
    else:
        stack.append(result)


def _do_call(
    frame: Frame,
    i: int,
    ins: dis.Instruction,
    env: Env,
    rec: Recorder | None,
    first: Val,
    second: Val,
    args: tuple[Val, ...],
    kwnames: tuple[str, ...],
) -> Val:
    # The two slots below the arguments: (NULL, f) or (f, NULL), or (method,
    # self) for obj.method(...).
    if first.null:
        callee, self_value = second, None
    elif second.null:
        callee, self_value = first, None
    else:
        callee, self_value = first, second
    all_args = (self_value, *args) if self_value is not None else args
    method_name = callee.path[-1] if callee.path is not None and len(callee.path) > 2 else None
    if rec is not None:
        rec.effects.append(
            Effect(
                ins.offset,
                CALL,
                callee,
                name=method_name,
                callee=callee,
                args=all_args,
                kwnames=kwnames,
                method=self_value is not None,
            )
        )
        # Closures run now (the callee) or whenever the callee calls them (the
        # arguments): their effects on our cells happen here.
        positional = all_args[: len(all_args) - len(kwnames)] if kwnames else all_args
        for code in callee.funcs:
            _closure_effects(frame, ins, env, rec, code, positional, known_args=True)
        for value in all_args:
            for code in value.funcs:
                _closure_effects(frame, ins, env, rec, code, all_args, known_args=False)
    # The result is named by a pseudo-root, "%<offset>": what it may hold is
    # decided later, with the callee in hand (len() gives a new int; a Python
    # function may give back part of an argument). Statically: anything.
    root = f"%{ins.offset}"
    if rec is not None:
        frame.call_sources[root] = derived(callee, *all_args)
    funcs = callee.funcs.union(*(a.funcs for a in all_args))
    return Val(frozenset({Tag(root)}), funcs)


def _escape(
    frame: Frame, i: int, value: Val, into: Val, rec: Recorder | None, *, stack_env: Env
) -> None:
    """`value` is stored into `into`: whatever changes `into` deeply may now
    change `value`'s roots; a closure stored away may be called any time."""
    if rec is None or not value:
        return
    ins = frame.instructions[i]
    if value.tags:
        rec.effects.append(Effect(ins.offset, ESCAPE, value, into=into))
    for code in value.funcs:
        _closure_effects(frame, ins, stack_env, rec, code, (), known_args=False)


def _closure_effects(
    frame: Frame,
    ins: dis.Instruction,
    env: Env,
    rec: Recorder,
    code: CodeType,
    args: tuple[Val, ...],
    *,
    known_args: bool,
) -> None:
    """Replay a nested function's effects at this instruction, in this
    frame's terms: its free variables are our cells, its parameters the
    call's arguments (or, when the closure is handed to someone else who
    will call it, anything the call could pass)."""
    from resumable.runtime import bytecode  # the analysis of the nested code

    nested = bytecode.facts(code)
    free = set(code.co_freevars)
    params = _parameters(code)
    anything = derived(*args) if args else FRESH

    def mapped(value: Val | None) -> Val | None:
        if value is None:
            return None
        tags: set[Tag] = set()
        funcs = set(value.funcs)
        expanded = list(expand_static(nested, value.tags))
        for tag in expanded:
            if tag.is_global:
                tags.add(tag)
                continue
            if tag.root in free:
                outer = _get(env, tag.root)
            elif tag.root in params:
                position = params.index(tag.root)
                outer = args[position] if known_args and position < len(args) else anything
            else:
                continue  # the nested function's own temporaries
            funcs.update(outer.funcs)
            for outer_tag in outer.tags:
                tags.add(_compose(outer_tag, tag))
        path = value.path
        if path is not None and not (path[0] == "G" or (path[0] == "L" and path[1] in free)):
            path = None
        return Val(frozenset(tags), frozenset(funcs), path, value.null)

    for effect in nested.outer_effects:
        if effect.kind == YIELD:
            # What a generator yields goes to its consumer, which is here:
            # the call's result already derives from its arguments.
            continue
        target = mapped(effect.target)
        assert target is not None
        rec.effects.append(
            Effect(
                ins.offset,
                effect.kind,
                target,
                name=effect.name,
                callee=mapped(effect.callee),
                args=tuple(mapped(a) or FRESH for a in effect.args),
                kwnames=effect.kwnames,
                method=effect.method,
                into=mapped(effect.into),
                via=effect.via or code,
            )
        )
    cells = free & frame.cells
    rec.uses.update(cells)
    for defs in nested.defs:
        rec.may_defs.update(defs & cells)
    for defs in nested.may_defs:
        rec.may_defs.update(defs & cells)
    if nested.frame_escapes:
        frame.frame_escapes = True


def expand_static(facts: Any, tags: frozenset[Tag] | tuple[Tag, ...]) -> frozenset[Tag]:
    """`tags` with pseudo-roots ("@" items, "%" call results) replaced by what
    they may derive from, statically (a call result: anything its callee and
    arguments reach)."""
    found: set[Tag] = set()
    todo = list(tags)
    seen: set[str] = set()
    while todo:
        tag = todo.pop()
        if not tag.is_pseudo:
            found.add(tag)
            continue
        if tag.root in seen:
            continue
        seen.add(tag.root)
        source = facts.anext_sources.get(tag.root) or facts.call_sources.get(tag.root)
        if source is not None:
            todo.extend(_compose(s, tag) for s in source.tags)
    return frozenset(found)


def _compose(outer: Tag, inner: Tag) -> Tag:
    """The tag, in the outer frame, of something `inner` deep in a value the
    outer frame knows as `outer`."""
    if outer.exact and inner.exact:
        return (
            Tag(outer.root, outer.depth, exact=True)
            if inner.depth == 0
            else _deepen(outer, inner.depth)
        )
    return Tag(outer.root, outer.depth, exact=False)


def _deepen(tag: Tag, by: int) -> Tag:
    for _ in range(by):
        tag = tag.child()
    return tag


def _parameters(code: CodeType) -> list[str]:
    """Parameter names in positional order (then keyword-only, *args, **kwargs)."""
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)  # *args, **kwargs
    return list(code.co_varnames[:count])


def _intrinsic(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    names: list[str] = (
        getattr(dis, "_intrinsic_1_descs", [])
        if ins.opname == "CALL_INTRINSIC_1"
        else getattr(dis, "_intrinsic_2_descs", [])
    )
    arg = _arg(ins)
    kind = names[arg] if arg < len(names) else ""
    popped = _pop(stack, 1 - _stack_effect(ins, jump=False), ins)
    if kind == "INTRINSIC_ASYNC_GEN_WRAP":
        _record(rec, Effect(ins.offset, YIELD, popped[0]))
    stack.append(derived(*popped))


def _async_gen_wrap(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    (value,) = _pop(stack, 1, ins)  # 3.11: the value an async generator yields
    _record(rec, Effect(ins.offset, YIELD, value))
    stack.append(value)


def _match_class(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    subject, _cls, _names_tuple = _pop(stack, 3, ins)
    stack.append(derived(subject.child()))  # a tuple of its attributes, or None


def _match_keys(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    if len(stack) < 2:
        raise Unmodelled(ins.opname, "no subject and keys on the stack")
    stack.append(derived(stack[-2].child()))  # a tuple of its values, or None


def _keep_push_fresh(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    """Reads the top of the stack and pushes a new value (GET_LEN,
    MATCH_MAPPING, MATCH_SEQUENCE, IMPORT_FROM)."""
    stack.append(FRESH)


def _class_deref(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    name = str(ins.argval)
    if rec is not None:
        rec.uses.add(name)
    stack.append(_get(env, name))


def _load_name(
    frame: Frame, i: int, ins: dis.Instruction, stack: Stack, env: Env, rec: Recorder | None
) -> None:
    name = str(ins.argval)
    if name in _FRAME_ESCAPES:
        frame.frame_escapes = True
    stack.append(global_(name))


# Opcodes whose models write `env` (step copies it for them first).
_BINDS = frozenset(
    {
        "LOAD_FAST_AND_CLEAR",
        "STORE_FAST",
        "STORE_DEREF",
        "STORE_FAST_STORE_FAST",
        "STORE_FAST_LOAD_FAST",
        "DELETE_FAST",
        "DELETE_DEREF",
    }
)
_TRANSFERS: dict[str, Transfer] = {}


def _register(transfer: Transfer, *names: str) -> None:
    for name in names:
        _TRANSFERS[name] = transfer


_register(
    _nop,
    "NOP",
    "RESUME",
    "EXTENDED_ARG",
    "NOT_TAKEN",
    "COPY_FREE_VARS",
    "MAKE_CELL",
    "KW_NAMES",
    "SETUP_ANNOTATIONS",
    "TRACE_RECORD",
    *_JUMPS,
)
_register(
    _pop_all,
    "POP_TOP",
    "END_FOR",
    "POP_ITER",
    "POP_EXCEPT",
    "END_ASYNC_FOR",
    "IMPORT_STAR",
    "PRINT_EXPR",
    "EXIT_INIT_CHECK",
    "POP_JUMP_IF_FALSE",
    "POP_JUMP_IF_TRUE",
    "POP_JUMP_IF_NONE",
    "POP_JUMP_IF_NOT_NONE",
    "POP_JUMP_FORWARD_IF_FALSE",
    "POP_JUMP_FORWARD_IF_TRUE",
    "POP_JUMP_FORWARD_IF_NONE",
    "POP_JUMP_FORWARD_IF_NOT_NONE",
    "POP_JUMP_BACKWARD_IF_FALSE",
    "POP_JUMP_BACKWARD_IF_TRUE",
    "POP_JUMP_BACKWARD_IF_NONE",
    "POP_JUMP_BACKWARD_IF_NOT_NONE",
)
_register(
    _fresh_result,
    "UNARY_NEGATIVE",
    "UNARY_POSITIVE",
    "UNARY_INVERT",
    "UNARY_NOT",
    "TO_BOOL",
    "COMPARE_OP",
    "IS_OP",
    "FORMAT_VALUE",
    "FORMAT_SIMPLE",
    "FORMAT_WITH_SPEC",
    "CONVERT_VALUE",
    "BUILD_STRING",
    "IMPORT_NAME",
    "PREP_RERAISE_STAR",
)
_register(
    _combine,
    "BUILD_TUPLE",
    "BUILD_LIST",
    "BUILD_SET",
    "BUILD_MAP",
    "BUILD_CONST_KEY_MAP",
    "BUILD_SLICE",
    "LIST_TO_TUPLE",
    "BUILD_INTERPOLATION",
    "BUILD_TEMPLATE",
)
_register(_push_fresh, "LOAD_SMALL_INT", "LOAD_COMMON_CONSTANT", "LOAD_ASSERTION_ERROR")
_register(_push_fresh, "LOAD_BUILD_CLASS", "LOAD_LOCALS")
_register(_load_const, "LOAD_CONST")
_register(
    _load_local,
    "LOAD_FAST",
    "LOAD_FAST_CHECK",
    "LOAD_FAST_BORROW",
    "LOAD_DEREF",
    "LOAD_CLOSURE",
    "LOAD_FAST_LOAD_FAST",
    "LOAD_FAST_BORROW_LOAD_FAST_BORROW",
)
_register(_load_and_clear, "LOAD_FAST_AND_CLEAR")
_register(_store_local, "STORE_FAST", "STORE_DEREF")
_register(_store_store, "STORE_FAST_STORE_FAST")
_register(_store_load, "STORE_FAST_LOAD_FAST")
_register(_delete_local, "DELETE_FAST", "DELETE_DEREF")
_register(_load_global, "LOAD_GLOBAL")
_register(_load_name, "LOAD_NAME")
_register(_class_deref, "LOAD_CLASSDEREF")
_register(_load_from_dict_or, "LOAD_FROM_DICT_OR_GLOBALS", "LOAD_FROM_DICT_OR_DEREF")
_register(_store_global, "STORE_GLOBAL", "DELETE_GLOBAL", "STORE_NAME", "DELETE_NAME")
_register(_load_attr, "LOAD_ATTR", "LOAD_METHOD")
_register(_load_super_attr, "LOAD_SUPER_ATTR")
_register(_load_special, "LOAD_SPECIAL")
_register(_before_with, "BEFORE_WITH", "BEFORE_ASYNC_WITH")
_register(_with_except_start, "WITH_EXCEPT_START")
_register(_store_attr, "STORE_ATTR", "DELETE_ATTR")
_register(_store_subscr, "STORE_SUBSCR", "DELETE_SUBSCR", "STORE_SLICE")
_register(_subscript, "BINARY_SUBSCR")
_register(_slice, "BINARY_SLICE")
_register(_binary_op, "BINARY_OP")
_register(_contains, "CONTAINS_OP")
_register(_copy, "COPY")
_register(_swap, "SWAP")
_register(_push_null, "PUSH_NULL")
_register(
    _list_add,
    "LIST_APPEND",
    "SET_ADD",
    "MAP_ADD",
    "LIST_EXTEND",
    "SET_UPDATE",
    "DICT_UPDATE",
    "DICT_MERGE",
)
_register(_unpack, "UNPACK_SEQUENCE", "UNPACK_EX")
_register(_get_iter, "GET_ITER", "GET_YIELD_FROM_ITER")
_register(_get_aiter, "GET_AITER")
_register(_get_anext, "GET_ANEXT")
_register(_for_iter, "FOR_ITER")
_register(_get_awaitable, "GET_AWAITABLE")
_register(_send, "SEND")
_register(_yield_value, "YIELD_VALUE")
_register(_end_send, "END_SEND")
_register(_cleanup_throw, "CLEANUP_THROW")
_register(_push_exc_info, "PUSH_EXC_INFO")
_register(_check_match, "CHECK_EXC_MATCH", "CHECK_EG_MATCH")
_register(_stop, *_STOPS)
_register(_return_generator, "RETURN_GENERATOR")
_register(_jump_or_pop, "JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP")
_register(_make_function, "MAKE_FUNCTION")
_register(_set_function_attribute, "SET_FUNCTION_ATTRIBUTE")
_register(_call, "CALL", "PRECALL", "CALL_KW", "CALL_FUNCTION_EX")
_register(_intrinsic, "CALL_INTRINSIC_1", "CALL_INTRINSIC_2")
_register(_async_gen_wrap, "ASYNC_GEN_WRAP")
_register(_match_class, "MATCH_CLASS")
_register(_match_keys, "MATCH_KEYS")
_register(_keep_push_fresh, "GET_LEN", "MATCH_MAPPING", "MATCH_SEQUENCE", "IMPORT_FROM")
