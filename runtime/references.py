"""Find a function again from its stored reference, in a fresh process.

A reference is "module:qualname". Functions defined in a script run as
`__main__` are found through the file path of their stored location, loaded
under a private module name so the script's `if __name__ == "__main__":`
block does not run again.

A method ("module:Class.method") is looked up in the class's `__dict__`,
not with getattr: that finds the object the class body defined (the
@resumable function itself, not what a descriptor would hand out), and
unwraps a staticmethod or classmethod around it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from resumable.errors import ModuleRunsOnImport

MAIN_ALIAS = "__resumable_main__"


def reference_of(function: Callable[..., Any]) -> str:
    return f"{function.__module__}:{function.__qualname__}"


def location_of(function: Callable[..., Any]) -> str:
    """Where the function is defined, "file:line": shown to users, and how a
    function of a script run as `__main__` is found again."""
    code = function.__code__
    return f"{code.co_filename}:{code.co_firstlineno}"


_PACKAGE = os.path.dirname(os.path.dirname(__file__)) + os.sep  # .../resumable/


def caller_location() -> str:
    """file:line of the user's code that called into the library: the first
    frame outside the package (helpers call helpers, at varying depths)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def resolve(reference: str, location: str) -> object:
    """Import and return the object named by `reference`."""
    module_name, _, qualname = reference.partition(":")
    module = _module(module_name, location, qualname)
    target: object = module
    for part in qualname.split("."):
        if part == "<locals>":
            raise LookupError(
                f"{reference} is defined inside another function, so a new process cannot "
                "import it; define @resumable functions at module level"
            )
        target = _member(target, part)
    return target


def _member(owner: object, name: str) -> object:
    if not isinstance(owner, type):
        return getattr(owner, name)
    for klass in owner.__mro__:
        if name in vars(klass):
            found = vars(klass)[name]
            if isinstance(found, staticmethod | classmethod):
                return found.__func__
            return found
    return getattr(owner, name)  # a metaclass attribute: let it raise or find it


# What asyncio says when a module's top level starts a loop inside ours.
_LOOP_RUNNING = (
    "cannot be called from a running event loop",
    "This event loop is already running",
)


def _module(module_name: str, location: str, qualname: str) -> ModuleType:
    try:
        return _load(module_name, location, qualname)
    except RuntimeError as exc:
        if not any(text in str(exc) for text in _LOOP_RUNNING):
            raise
        where = (
            location.rsplit(":", 1)[0] if module_name in ("__main__", MAIN_ALIAS) else module_name
        )
        raise ModuleRunsOnImport(where, f"{module_name}:{qualname}", str(exc)) from exc


def _load(module_name: str, location: str, qualname: str) -> ModuleType:
    if module_name not in ("__main__", MAIN_ALIAS):
        return importlib.import_module(module_name)
    main = sys.modules.get("__main__")
    if main is not None and hasattr(main, qualname.split(".", maxsplit=1)[0]):
        return main
    if MAIN_ALIAS in sys.modules:
        return sys.modules[MAIN_ALIAS]
    path = location.rsplit(":", 1)[0]
    spec = importlib.util.spec_from_file_location(MAIN_ALIAS, path)
    if spec is None or spec.loader is None:
        raise LookupError(f"cannot load the script {path} that defined {qualname}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MAIN_ALIAS] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[MAIN_ALIAS]  # half-run: the next attempt loads it afresh
        raise
    return module
