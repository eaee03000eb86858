"""The abstract interpreter models every opcode the running CPython's compiler
emits: it analyses real code (a slice of the standard library, our own
package) without refusing any of it, and what it records is right for the
shapes that matter."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

from resumable.runtime import bytecode, opcodes
from resumable.runtime.absval import CALL, ITERATE, STORE

# Modules whose code uses most of the language: async code, generators,
# comprehensions, match, with, try/except*, closures, class bodies.
STDLIB = [
    "asyncio",
    "json",
    "csv",
    "email.message",
    "http.client",
    "collections",
    "dataclasses",
    "pathlib",
    "re",
    "typing",
    "ast",
    "inspect",
    "contextlib",
    "functools",
    "tomllib",
    "zipfile",
]


def code_objects(module: types.ModuleType):
    def walk(code: types.CodeType):
        yield code
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                yield from walk(const)

    source = getattr(module, "__file__", None)
    if not source or not source.endswith(".py"):
        return
    with open(source, encoding="utf-8") as handle:
        compiled = compile(handle.read(), source, "exec")
    for code in walk(compiled):
        if code is not compiled:  # module bodies are not functions
            yield code


def modules(name: str):
    module = importlib.import_module(name)
    yield module
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # platform-specific submodules
            continue


@pytest.mark.parametrize("name", [*STDLIB, "resumable"])
def test_real_code_is_modelled(name: str):
    """Every function of these modules is analysed; none is refused."""
    analysed = 0
    for module in modules(name):
        for code in code_objects(module):
            bytecode.facts(code)
            analysed += 1
    assert analysed > 10


class TestWhatItRecords:
    """Effects on the shapes the carry rules depend on."""

    def test_an_inner_append_is_a_call_on_a_part(self):
        def body(batches, x):
            batches[-1].append(x)

        found = [e for e in bytecode.facts(body.__code__).effects if e.kind == CALL and e.method]
        receiver = found[0].args[0]
        assert {(t.root, t.depth, t.exact) for t in receiver.tags} == {("batches", 1, True)}

    def test_an_alias_made_before_is_followed(self):
        def body(items):
            alias = items
            alias.append(1)

        calls = [e for e in bytecode.facts(body.__code__).effects if e.kind == CALL and e.method]
        assert {t.root for t in calls[0].args[0].tags} == {"alias", "items"}

    def test_stores_and_iteration(self):
        def body(d, it):
            d["k"] = 1
            for _ in it:
                pass

        facts = bytecode.facts(body.__code__)
        assert any(
            e.kind == STORE and "d" in {t.root for t in e.target.tags} for e in facts.effects
        )
        assert any(
            e.kind == ITERATE and "it" in {t.root for t in e.target.tags} for e in facts.effects
        )

    def test_every_modelled_opcode_checks_its_stack_effect(self):
        """No model may silently ignore dis.stack_effect: any opcode of this
        CPython either has a model or is refused."""
        import dis

        known = set(opcodes._TRANSFERS)
        emitted = {name for name in dis.opmap if not name.startswith(("INSTRUMENTED_", "<"))}
        # Pseudo-instructions never appear in co_code; the rest must be modelled.
        pseudo = {name for name, op in dis.opmap.items() if op >= 256} | {"CACHE", "RESERVED"}
        missing = emitted - known - pseudo - {"ENTER_EXECUTOR", "INTERPRETER_EXIT"}
        assert not missing, f"opcodes without a model: {sorted(missing)}"
