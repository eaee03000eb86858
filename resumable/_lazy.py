"""Names a package loads on first use (PEP 562), so that importing it costs
next to nothing: the command line's `--help` and `list` need a sliver of the
library, and a program pays for what it uses."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def attributes(namespace: dict[str, Any], homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports each name of `homes` (name ->
    the module defining it) when first asked for, and keeps it in the
    module's `namespace`, so later lookups do not come back here."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    return __getattr__
