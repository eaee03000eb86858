"""Run a job from jobs.pipeline in this process: `python -m jobs.child STORE ID JOB N LOG DELAY`."""

from __future__ import annotations

import asyncio
import json
import sys

from jobs import pipeline


def main() -> None:
    store, execution_id, job, n, log_path, delay = sys.argv[1:]
    function = getattr(pipeline, job)
    result = asyncio.run(
        function.options(execution_id=execution_id, store=store)(int(n), log_path, float(delay))
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
