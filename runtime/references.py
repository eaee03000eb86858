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
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

MAIN_ALIAS = "__resumable_main__"


def reference_of(function: Callable[..., Any]) -> str:
    return f"{function.__module__}:{function.__qualname__}"


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


def _module(module_name: str, location: str, qualname: str) -> ModuleType:
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
    spec.loader.exec_module(module)
    return module
