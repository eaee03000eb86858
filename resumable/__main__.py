"""The `resumable` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:  # noqa: RET503
    parser = argparse.ArgumentParser(prog="resumable", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run a pipeline, kill it with SIGKILL, resume it")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from resumable._demo import main as demo

        return demo()
    parser.error(f"unknown command {args.command!r}")  # exits with status 2


if __name__ == "__main__":
    sys.exit(main())
