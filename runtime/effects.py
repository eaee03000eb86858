"""Which roots (locals, globals) a loop body may change, with run-time facts.

The bytecode analysis records effects on abstract values (`absval`); this
module judges each one with what only the run time knows: the type of the
object a local holds, the types deeper in its graph (`shapes`), and which
function a call really calls (`callees`, and for Python functions, their own
bytecode, analysed the same way up to a few calls deep).

A root's change is NONE (provably untouched), SHALLOW (the object itself
changed: appended to, an item set, an iterator advanced) or DEEP (something
inside it may have changed). Whatever cannot be resolved counts as DEEP.
"""

from __future__ import annotations

import collections
import contextlib
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from resumable.runtime import bytecode, callees, kinds, opcodes
from resumable.runtime.absval import (
    AWAIT,
    CALL,
    ESCAPE,
    INPLACE,
    ITERATE,
    STORE,
    SUBSCRIPT,
    YIELD,
    Effect,
    Tag,
    Val,
)
from resumable.runtime.shapes import Shape

NONE, SHALLOW, DEEP = 0, 1, 2
# Python callees analysed this many calls deep; deeper calls count as DEEP.
MAX_CALL_DEPTH = 3

# Test hook: the property tests break one rule on purpose to show they catch
# it (tests/test_properties.py). Never set outside tests.
BROKEN_RULE: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """A part of a root's graph: the object itself (depth 0, exact), or what
    lies `depth` levels inside it (exactly, or at least that deep)."""

    shape: Shape | None  # None: the value is not known (unbound when the loop began)
    depth: int = 0
    exact: bool = True
    static_kind: type | None = None  # what the bytecode knows it to be

    @property
    def top(self) -> bool:
        return self.depth == 0 and self.exact

    def inner(self, tag: Tag, kind: type | None = None) -> Part:
        if self.exact and tag.exact:
            return Part(
                self.shape,
                self.depth + tag.depth,
                exact=True,
                static_kind=kind if not tag.depth else None,
            )
        # "tag.depth or deeper": objects above that depth are not reached.
        return Part(self.shape, self.depth + tag.depth, exact=False)

    def types(self) -> set[type] | None:
        if self.top and self.static_kind is not None:
            return {self.static_kind}
        if self.shape is None:
            return None
        return self.shape.types_at(self.depth, self.exact)

    def value(self) -> Any:
        return self.shape.value if self.top and self.shape is not None else _UNKNOWN


_UNKNOWN = object()


@dataclass(slots=True)
class Change:
    """Why a root counts as changed: the strongest effect found."""

    level: int = NONE
    offset: int = -1
    how: str = ""
    via: CodeType | None = None
    # Every change is an append/extend of this very list: it can be written
    # as a delta of the new items.
    appends_only: bool = True
    in_place: bool = False  # the object itself may change (not only the name rebound)

    def note(self, level: int, effect: Effect, how: str, *, append: bool = False) -> None:
        if level == NONE:
            return
        if not append:
            self.appends_only = False
        self.in_place = True
        if level > self.level:
            self.level = level
            self.offset = effect.offset
            self.how = how
            self.via = effect.via


def _mutable(types_found: set[type] | None) -> bool:
    if types_found is None:
        return True
    return any(
        not (kind in kinds.ATOMS or issubclass(kind, kinds.CODE_TYPES)) for kind in types_found
    )


def _iterator(types_found: set[type] | None) -> bool:
    if types_found is None:
        return True
    return any(
        kind not in kinds.ATOMS
        and kind not in kinds.TRANSPARENT
        and (
            hasattr(kind, "__next__")
            or hasattr(kind, "__anext__")
            or issubclass(
                kind, (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
            )
        )
        for kind in types_found
    )


def _level(part: Part) -> int:
    return SHALLOW if part.top else DEEP


@dataclass(slots=True)
class Judge:
    """Judges effects for the frame running a loop."""

    frame_globals: dict[str, Any]
    frame_locals: dict[str, Any]
    # The code whose effects are being judged: its pseudo-roots ("@" items,
    # "%" call results) are expanded from its facts.
    facts: bytecode.CodeFacts | None = None
    # A pseudo-root decided at run time: the checkpointed loop's own item.
    overrides: dict[str, tuple[Tag, ...]] = field(default_factory=dict)
    _expanded: dict[tuple[int, str], tuple[Tag, ...]] = field(default_factory=dict)
    _depth: int = 0  # callees whose results are being read
    # Callee resolutions that proved an argument untouched: checked again at
    # each checkpoint, so a rebound function cannot make the proof stale.
    decisive: dict[tuple[str, ...], Any] = field(default_factory=dict)
    _memo: dict[tuple[object, ...], tuple[int, str]] = field(default_factory=dict)

    # -- one root against many effects ------------------------------------------

    def judge(
        self, root: str, part: Part, effects: Iterable[Effect]
    ) -> tuple[Change, set[tuple[str, bool]]]:
        """How `effects` may change `root` (whose graph `part` describes), and
        the escapes: roots its value was stored into ((root, live) pairs are
        added by the caller), as (into root, this root's change must reach it)."""
        change = Change()
        escapes: set[tuple[str, bool]] = set()
        for effect in effects:
            if BROKEN_RULE == "closure-call" and effect.via is not None:
                continue
            self._one(root, part, effect, change, escapes)
        return change, escapes

    def _tags(self, root: str, value: Val | None) -> list[Tag]:
        if value is None:
            return []
        found = []
        for tag in value.tags:
            if tag.root == root:
                found.append(tag)
            elif tag.is_pseudo:
                found.extend(
                    _compose(source, tag)
                    for source in self._expand(tag.root)
                    if source.root == root
                )
        if BROKEN_RULE == "pre-loop-alias" and value.path is not None and len(value.path) > 1:
            # Pretend a value is only what its own name holds.
            named = value.path[1] if value.path[0] in ("L", "G") else None
            if named is not None and named != root.lstrip("$"):
                return []
        if BROKEN_RULE == "partial-mutation":
            found = [t for t in found if t.depth == 0 and t.exact]
        return found

    def _one(
        self,
        root: str,
        part: Part,
        effect: Effect,
        change: Change,
        escapes: set[tuple[str, bool]],
    ) -> None:
        kind = effect.kind
        if kind == CALL:
            self._call(root, part, effect, change, escapes)
            return
        if kind == ESCAPE:
            tags = self._tags(root, effect.target)
            if not tags:
                return
            into = effect.into
            roots = {t.root for t in self._real(into.tags)} if into is not None else set()
            if not roots:
                # Stored into something no root holds: whoever holds it may
                # change it later.
                if any(_mutable(part.inner(t).types()) for t in tags):
                    change.note(DEEP, effect, "stores it into an object the analysis cannot follow")
                return
            for other in roots:
                if other != root:
                    escapes.add((other, True))
            return
        for tag in self._tags(root, effect.target):
            inner = part.inner(tag, effect.target.kind)
            found = inner.types()
            if kind == STORE:
                name = effect.name or "[]"
                if inner.top:
                    change.note(SHALLOW, effect, _store_text(name))
                elif _mutable(found):
                    change.note(DEEP, effect, _store_text(name, inside=True))
            elif kind == INPLACE:
                if _inplace(found, effect.name or ""):
                    change.note(_level(inner), effect, f"changes it in place with {effect.name}")
            elif kind == SUBSCRIPT:
                if found is None or any(issubclass(k, collections.defaultdict) for k in found):
                    change.note(_level(inner), effect, "reads a missing key of a defaultdict")
            elif kind in (ITERATE,):
                if _iterator(found):
                    change.note(
                        _level(inner), effect, f"advances it as an iterator ({effect.name})"
                    )
            elif kind == AWAIT:
                if found is None or any(
                    issubclass(k, (types.CoroutineType, types.GeneratorType)) for k in found
                ):
                    change.note(_level(inner), effect, "awaits it")
            elif kind == YIELD and _mutable(found):
                change.note(DEEP, effect, "yields it to a consumer")

    # -- calls --------------------------------------------------------------------

    def _call(
        self,
        root: str,
        part: Part,
        effect: Effect,
        change: Change,
        escapes: set[tuple[str, bool]],
    ) -> None:
        args = effect.args
        kwnames = frozenset(effect.kwnames)
        positional = len(args) - len(effect.kwnames)
        method = effect.method and bool(args)
        callee_val = effect.callee
        if callee_val is not None and _closure_only(callee_val):
            # A function defined in this code (a comprehension's, a nested
            # def): what it does to its arguments and cells was replayed at
            # this call (the effects with `via`).
            return
        name = callee_val.path[-1] if callee_val is not None and callee_val.path else None
        # The callable itself, when it is (part of) this root: calling it may
        # change it (a bound method of a list, an object with __call__).
        if (
            callee_val is not None
            and not method
            and not (BROKEN_RULE == "closure-call" and callee_val.funcs)
        ):
            for tag in self._tags(root, callee_val):
                inner = part.inner(tag)
                callee_obj = callees.resolve(callee_val.path, self.frame_globals, self.frame_locals)
                level, how = self._calling(callee_obj, inner)
                change.note(level, effect, how)
        for position, value in enumerate(args):
            tags = self._tags(root, value)
            if not tags:
                continue
            keyword = effect.kwnames[position - positional] if position >= positional else None
            for tag in tags:
                inner = part.inner(tag, value.kind)
                if method and position == 0:
                    level, how, append = self._receiver(inner, name, kwnames)
                    change.note(level, effect, how, append=append)
                    continue
                if not _mutable(inner.types()):
                    continue  # only immutable objects there: nothing can change them
                level, how, stored = self._argument(effect, position, keyword, inner, kwnames)
                if stored and method:
                    for receiver_tag in self._real(args[0].tags):
                        if receiver_tag.root != root:
                            escapes.add((receiver_tag.root, True))
                change.note(level, effect, how)

    def _receiver(
        self, part: Part, name: str | None, kwnames: frozenset[str]
    ) -> tuple[int, str, bool]:
        """What calling method `name` on `part` does to it: (level, why, is it
        an append to this very list)."""
        found = part.types()
        if found is not None and not _mutable(found):
            return NONE, "", False  # only immutable objects there
        if name is None:
            return DEEP, "calls a method on it", False
        if found is None:
            return DEEP, f"calls its method {name}()", False
        if not part.exact:
            # Maybe a new object holding parts of the root (a wrapper made by
            # a call): its methods are not those of the types found inside.
            return DEEP, f"calls its method {name}()", False
        if BROKEN_RULE == "method-call" and not found & set(kinds.TRANSPARENT):
            return NONE, "", False
        worst = NONE
        for kind in found:
            if kind in kinds.ATOMS or issubclass(kind, kinds.CODE_TYPES):
                if issubclass(kind, types.ModuleType):
                    # mod.func(...): a function of a module, not a method.
                    continue
                continue
            level = self._method_level(kind, name, part, kwnames)
            worst = max(worst, level)
            if worst == DEEP:
                break
        append = (
            worst == SHALLOW
            and part.top
            and found <= {list, collections.deque}
            and name in ("append", "extend")
        )
        return worst, f"calls its method {name}()", append

    def _method_level(self, kind: type, name: str, part: Part, kwnames: frozenset[str]) -> int:
        listed = callees.container_method(kind, name) or callees.library_method(kind, name, kwnames)
        if listed is not None:
            receiver, _ = listed
            return _level(part) if receiver == callees.CHANGES else NONE
        if kinds.by_class_type(kind) != kinds.OTHER:
            return _level(part)  # a resource's own business; classified elsewhere
        function = callees.static_attr(kind, name)
        if callees.missing(function):
            return DEEP
        function, _ = callees.unwrap(function)
        if isinstance(function, types.FunctionType):
            return self._python(function, 0, None, part)[0]
        return DEEP  # a C method of an unknown type

    def _argument(
        self,
        effect: Effect,
        position: int,
        keyword: str | None,
        part: Part,
        kwnames: frozenset[str],
    ) -> tuple[int, str, bool]:
        """What the call does to the argument at `position`: (level, why,
        does the receiver keep a reference to it)."""
        frame_globals, frame_locals = self.frame_globals, self.frame_locals
        callee_val = effect.callee
        label = _callee_label(callee_val)
        if BROKEN_RULE == "call-argument" and not effect.method:
            return NONE, "", False
        path = callee_val.path if callee_val is not None else None
        if effect.method and effect.args:
            receiver_val = effect.args[0]
            method_name = path[-1] if path else None
            receiver_types = {receiver_val.kind} if receiver_val.kind is not None else None
            receiver_obj = callees.resolve(path[:-1] if path else None, frame_globals, frame_locals)
            if not callees.missing(receiver_obj):
                receiver_types = {type(receiver_obj)}
            if method_name is not None and receiver_types is not None:
                worst, stored = NONE, False
                for kind in receiver_types:
                    if issubclass(kind, types.ModuleType):
                        function = callees.static_attr(receiver_obj, method_name)
                        level, stored_here = self._function_arg(
                            function, position - 1, keyword, part, kwnames
                        )
                    else:
                        listed = callees.container_method(
                            kind, method_name
                        ) or callees.library_method(kind, method_name, kwnames)
                        if listed is not None:
                            level, stored_here = _listed_arg(listed[1], part)
                        else:
                            function = callees.static_attr(kind, method_name)
                            level, stored_here = self._function_arg(
                                function, position, keyword, part, kwnames
                            )
                    worst, stored = max(worst, level), stored or stored_here
                if worst == NONE and path is not None:
                    self.decisive[path] = callees.resolve(path, frame_globals, frame_locals)
                return worst, f"passes it to {label}", stored
            return DEEP, f"passes it to {label}", True
        callee_obj = callees.resolve(path, frame_globals, frame_locals)
        if callees.missing(callee_obj):
            return DEEP, f"passes it to {label}", True
        level, stored = self._function_arg(callee_obj, position, keyword, part, kwnames)
        if level == NONE and path is not None:
            self.decisive[path] = callee_obj
        return level, f"passes it to {label}", stored

    def _function_arg(
        self,
        callee: Any,
        position: int,
        keyword: str | None,
        part: Part,
        kwnames: frozenset[str],
    ) -> tuple[int, bool]:
        if callees.missing(callee):
            return DEEP, True
        function, added = callees.unwrap(callee)
        position += added
        if isinstance(function, types.FunctionType):
            return self._python(function, position, keyword, part)
        if isinstance(function, type):
            if function.__module__ == "builtins" or kinds.by_class_type(function) != kinds.OTHER:
                what = callees.builtin_effect(function, position, kwnames)
            else:
                init = callees.static_attr(function, "__init__")
                if isinstance(init, types.FunctionType):
                    return self._python(init, position + 1, keyword, part)
                what = callees.builtin_effect(function, position, kwnames)
            return _listed_arg(what, part)
        what = callees.builtin_effect(function, position if keyword is None else -1, kwnames)
        return _listed_arg(what, part)

    def _python(
        self,
        function: types.FunctionType,
        position: int,
        keyword: str | None,
        part: Part,
    ) -> tuple[int, bool]:
        """What a Python function does to its parameter at `position` (or
        named `keyword`), bound to `part`: from its own bytecode."""
        if self._depth >= MAX_CALL_DEPTH:
            return DEEP, True
        code = function.__code__
        params = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
        if keyword is not None:
            param = keyword if keyword in params else None
        else:
            param = params[position] if position < code.co_argcount else None
        if param is None:
            # *args or **kwargs: the value sits inside a tuple or dict.
            extra = code.co_argcount + code.co_kwonlyargcount
            starred = code.co_varnames[extra : extra + 2] if code.co_flags & 0x0C else ()
            if not starred:
                return DEEP, True
            param = starred[0] if keyword is None and code.co_flags & 0x04 else starred[-1]
            part = Part(part.shape, part.depth, exact=False)
        key = (code, param, id(part.shape), part.depth, part.exact)
        found = self._memo.get(key)
        if found is not None:
            return found[0], found[1] == "stored"
        self._memo[key] = (DEEP, "stored")  # a recursive call: assume the worst meanwhile
        try:
            facts = bytecode.facts(code)
        except bytecode.Unmodelled:
            return DEEP, True
        with self._inside(facts, function):
            change, escapes = self.judge(param, part, facts.outer_effects)
        stored = bool(escapes)
        level = DEEP if stored and change.level < DEEP and _mutable(part.types()) else change.level
        self._memo[key] = (level, "stored" if stored else "")
        return level, stored

    # -- pseudo-roots ----------------------------------------------------------------

    def _expand(self, root: str) -> tuple[Tag, ...]:
        """The real roots (with depths) a pseudo-root may stand for."""
        if root in self.overrides:
            return self.overrides[root]
        facts = self.facts
        if facts is None:
            return ()
        key = (id(facts), root)
        found = self._expanded.get(key)
        if found is not None:
            return found
        # Meanwhile (a call whose argument is its own earlier result, in a
        # loop): the static answer, which over-approximates.
        static = tuple(opcodes.expand_static(facts, frozenset({Tag(root)})))
        self._expanded[key] = static
        if root.startswith("%"):
            found = self._call_result(facts, root, static)
        else:
            source = facts.anext_sources.get(root)
            found = self._real(source.tags) if source is not None else ()
        self._expanded[key] = found
        return found

    def _real(self, tags: Iterable[Tag]) -> tuple[Tag, ...]:
        found: set[Tag] = set()
        for tag in tags:
            if tag.is_pseudo:
                found.update(_compose(source, tag) for source in self._expand(tag.root))
            else:
                found.add(tag)
        return tuple(found)

    def _call_result(
        self, facts: bytecode.CodeFacts, root: str, static: tuple[Tag, ...]
    ) -> tuple[Tag, ...]:
        """What the result of the call at "%<offset>" may hold, given the
        callee: nothing of its arguments (len(), json.dumps(), a client's
        request), their items (sorted(), dict.get()), whatever a Python
        function's return statements give back, or anything (unknown)."""
        offset = int(root[1:])
        effect = next(
            (e for e in facts.effects if e.offset == offset and e.kind == CALL and e.via is None),
            None,
        )
        if effect is None or effect.callee is None:
            return static
        returns = self._returns(effect)
        if returns == callees.FRESH:
            return ()
        if returns == callees.ELEMENTS:
            tags: list[Tag] = []
            for value in effect.args:
                tags.extend(
                    Tag(t.root, t.child().depth, exact=False) for t in self._real(value.tags)
                )
            return tuple(tags)
        if isinstance(returns, types.FunctionType):
            return self._python_returns(returns, effect) or ()
        return static

    def _returns(self, effect: Effect) -> object:
        callee_val = effect.callee
        assert callee_val is not None
        path = callee_val.path
        name = path[-1] if path else None
        if effect.method and effect.args:
            receiver = effect.args[0]
            found: set[type] = set()
            if receiver.kind is not None:
                found.add(receiver.kind)
            owner = callees.resolve(
                path[:-1] if path else None, self.frame_globals, self.frame_locals
            )
            if not callees.missing(owner):
                found = {type(owner)}
            if not found or name is None:
                return None
            answers = set()
            for kind in found:
                if issubclass(kind, types.ModuleType):
                    answers.add(self._function_returns(callees.static_attr(owner, name)))
                elif kind in kinds.ATOMS:
                    answers.add(callees.FRESH)
                elif kinds.by_class_type(kind) == kinds.RESOURCE:
                    answers.add(callees.FRESH)  # a client's answers are new objects
                else:
                    listed = callees.container_returns(kind, name)
                    if listed is not None:
                        answers.add(listed)
                    else:
                        function, _ = callees.unwrap(callees.static_attr(kind, name))
                        answers.add(function if isinstance(function, types.FunctionType) else None)
            return answers.pop() if len(answers) == 1 else None
        return self._function_returns(callees.resolve(path, self.frame_globals, self.frame_locals))

    def _function_returns(self, callee: Any) -> object:
        if callees.missing(callee):
            return None
        function, _ = callees.unwrap(callee)
        if isinstance(function, types.FunctionType):
            return function
        return callees.builtin_returns(function)

    def _python_returns(
        self, function: types.FunctionType, effect: Effect
    ) -> tuple[Tag, ...] | None:
        """The caller's roots a Python function's result may hold: its return
        statements' values, with its parameters mapped to the call's
        arguments."""
        try:
            facts = bytecode.facts(function.__code__)
        except bytecode.Unmodelled:
            return None
        code = function.__code__
        params = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
        args = list(effect.args)
        positional = len(args) - len(effect.kwnames)
        by_param: dict[str, Val] = {
            params[index]: value
            for index, value in enumerate(args[:positional])
            if index < len(params)
        }
        by_param.update(zip(effect.kwnames, args[positional:], strict=False))
        if self._depth >= MAX_CALL_DEPTH:
            returned: Iterable[Tag] = opcodes.expand_static(facts, facts.returns.tags)
        else:
            # The callee's own calls are judged the same way, in its module.
            with self._inside(facts, function):
                returned = self._real(facts.returns.tags)
        tags: set[Tag] = set()
        for tag in returned:
            if tag.is_global:
                if function.__globals__ is self.frame_globals:
                    tags.add(tag)
                continue
            value = by_param.get(tag.root)
            if value is None:
                if tag.root in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount + 2]:
                    return None  # *args, **kwargs, or an argument we cannot place
                continue  # the function's own new objects
            tags.update(_compose(source, tag) for source in self._real(value.tags))
        return tuple(tags)

    @contextlib.contextmanager
    def _inside(self, facts: bytecode.CodeFacts, function: types.FunctionType) -> Iterator[None]:
        """Judge a callee's code: its facts, its module, one call deeper."""
        saved = self.facts, self.overrides, self.frame_globals, self.frame_locals
        self.facts, self.overrides = facts, {}
        self.frame_globals, self.frame_locals = function.__globals__, {}
        self._depth += 1
        try:
            yield
        finally:
            self.facts, self.overrides, self.frame_globals, self.frame_locals = saved
            self._depth -= 1

    def _calling(self, callee: Any, part: Part) -> tuple[int, str]:
        """Calling a value that is (part of) a root."""
        if callees.missing(callee):
            return DEEP, "calls it"
        if isinstance(callee, types.MethodType | types.BuiltinMethodType):
            owner = getattr(callee, "__self__", None)
            name = getattr(callee, "__name__", "")
            if owner is not None and not isinstance(owner, types.ModuleType):
                listed = callees.container_method(type(owner), name)
                if listed is not None:
                    return (DEEP if listed[0] == callees.CHANGES else NONE), f"calls {name}()"
        return DEEP, "calls it"


def _compose(outer: Tag, inner: Tag) -> Tag:
    """`inner` (relative to something `outer` names), in `outer`'s root."""
    if outer.exact and inner.exact:
        tag = outer
        for _ in range(inner.depth):
            tag = tag.child()
        return tag
    return Tag(outer.root, outer.depth, exact=False)


def _closure_only(callee: Val) -> bool:
    """Is the callable certainly one of the nested functions it names (its
    tags are only the cells those functions capture)?"""
    if not callee.funcs or callee.path is not None:
        return False
    captured = set().union(*(code.co_freevars for code in callee.funcs))
    return all(tag.root in captured for tag in callee.tags)


def _listed_arg(what: str, part: Part) -> tuple[int, bool]:
    if what == callees.READS:
        return NONE, False
    if what == callees.ITERATES:
        return (_level(part) if _iterator(part.types()) else NONE), False
    if what == callees.STORED:
        return NONE, True
    if what == callees.CHANGES:
        return _level(part), False
    return DEEP, True


def _inplace(found: set[type] | None, symbol: str) -> bool:
    if found is None:
        return True
    dunder = _INPLACE_DUNDERS.get(symbol)
    return any(
        (dunder is not None and hasattr(kind, dunder)) or kind in (list, dict, set, bytearray)
        for kind in found
        if kind not in kinds.ATOMS
    )


_INPLACE_DUNDERS = {
    "+=": "__iadd__",
    "-=": "__isub__",
    "*=": "__imul__",
    "/=": "__itruediv__",
    "//=": "__ifloordiv__",
    "%=": "__imod__",
    "**=": "__ipow__",
    "@=": "__imatmul__",
    "&=": "__iand__",
    "|=": "__ior__",
    "^=": "__ixor__",
    "<<=": "__ilshift__",
    ">>=": "__irshift__",
}


def _store_text(name: str, *, inside: bool = False) -> str:
    where = "something inside it" if inside else "it"
    if name.startswith("del "):
        return f"deletes {name[4:]} of {where}"
    if name.startswith("."):
        return f"sets attribute {name[1:]} of {where}"
    return f"sets an item of {where}"


def _callee_label(callee: Val | None) -> str:
    if callee is None or not callee.path:
        return "a function"
    parts = [p for p in callee.path[1:] if p != "?"]
    return ".".join(parts) or "a function"
