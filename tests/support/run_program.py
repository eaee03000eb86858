"""Run one corpus program as a new execution, in this process:

    python -m support.run_program MODULE:ATTR.PATH STORE EXECUTION_ID LOG OUTCOME

Prints the result as JSON on stdout. An exception is left to propagate, as it
would in a user's script (the traceback on stderr is part of what the test
checks), after its class and attributes are written to OUTCOME as JSON.
Imports only the program's module: start-up time is most of a test's time.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys


def describe(exc: BaseException) -> dict[str, object]:
    """An exception as the harness reads it: every class of its MRO by full
    name, its message, and the attributes ResumableErrors keep."""
    attributes = {
        name: str(getattr(exc, name))
        for name in ("where", "variable", "type_name", "reason", "position")
        if hasattr(exc, name)
    }
    return {
        "mro": [f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__],
        "message": str(exc),
        "attributes": attributes,
    }


def main() -> None:
    reference, store, execution_id, log, outcome = sys.argv[1:]
    module_name, _, path = reference.partition(":")
    target: object = importlib.import_module(module_name)
    for attribute in path.split("."):
        target = getattr(target, attribute)
    try:
        result = asyncio.run(target.options(execution_id=execution_id, store=store)(log))  # type: ignore[attr-defined]
    except BaseException as exc:
        with open(outcome, "w", encoding="utf-8") as out:
            json.dump(describe(exc), out)
        raise
    print(json.dumps(result))


if __name__ == "__main__":
    main()
