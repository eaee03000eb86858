"""Run a job in this process: `python -m jobs.child STORE ID MODULE.FUNCTION N LOG DELAY`
(MODULE is a module of the jobs package, e.g. `pipeline.flat`)."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys


def main() -> None:
    store, execution_id, job, n, log_path, delay = sys.argv[1:]
    module, _, name = job.rpartition(".")
    function = getattr(importlib.import_module(f"jobs.{module or 'pipeline'}"), name)
    result = asyncio.run(
        function.options(execution_id=execution_id, store=store)(int(n), log_path, float(delay))
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
