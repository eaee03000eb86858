"""Run every benchmark: `python -m benchmarks [--quick] [--stores memory,sqlite,redis]`.

Each script prints its table and writes benchmarks/results/<name>.json;
this prints a summary of every README "Benchmarks" target at the end and exits 0
whatever the verdicts (benchmarks report, they do not gate).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from benchmarks._harness import RESULTS, verdict_text

SCRIPTS = [
    "bench_batching",
    "bench_checkpoint",
    "bench_steps",
    "bench_bytes",
    "bench_resume",
    "bench_memory",
    "bench_agent",
    "bench_watch",
    "bench_cli",
]
RESULT_FILES = [
    "batching",
    "checkpoint",
    "steps",
    "bytes",
    "resume",
    "memory",
    "agent",
    "watch",
    "cli",
]


def main() -> int:
    passthrough = sys.argv[1:]
    began = time.perf_counter()
    failed = []
    for script in SCRIPTS:
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{script}", *passthrough])
        if code != 0:
            failed.append(script)
    print(f"\n## Summary ({time.perf_counter() - began:.0f} s)")
    for name in RESULT_FILES:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for verdict in data["verdicts"]:
            status = verdict_text(verdict, data["quick"])
            print(
                f"  {status:8s} {verdict['what']}: {verdict['measured']:.3g} "
                f"(target {verdict['target']})"
            )
    if failed:
        print(f"  scripts that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
