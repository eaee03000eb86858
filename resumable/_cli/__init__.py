"""The `resumable` command: list, show (--follow), resume, cancel, recover,
gc, migrate (--sign), keygen and demo, over any store.

Built on argparse from the standard library, not click or typer: the command
has nine subcommands with a few options each, which argparse handles well,
and the core library's dependencies stay at cloudpickle, msgpack, stamina
and rich (anything else must earn its place). argparse also
gives the conventional exit status 2 for usage errors for free.

Modules: `parsing` (the grammar), `exitcodes` (the exit codes, defined
once), `formatting` (tables, times, JSON views), `values` (describing
arguments without running code), `progress` (bars), `show` (show and
--follow), `migrate` (migrate --sign) and `commands` (the rest).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from resumable._cli import parsing, safe
from resumable._cli.exitcodes import CommandError, ExitCode, for_error


def _import_from_cwd() -> None:
    """Functions are imported by their stored reference; like `python -m`,
    the console script finds modules in the current directory."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns its exit code (see exitcodes.MEANINGS)."""
    args = parsing.build().parse_args(argv)  # exits with 2 on bad usage
    from resumable.errors import ResumableError  # after parsing: `--help` needs none

    _never_fail_to_print()
    try:
        return _run(args)
    except CommandError as exc:
        return _fail(exc.message, exc.code)
    except ResumableError as exc:
        return _fail(str(exc), for_error(exc))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `resumable list | head`: the reader has all it wanted. Point stdout
        # at /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK


def _never_fail_to_print() -> None:
    """A name the terminal's encoding lacks (LANG=C and an accented id)
    prints as an escape instead of ending the command with a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from resumable._demo import main as demo

        return demo()
    if args.command == "keygen":
        return _keygen(args.file)
    import asyncio

    from resumable._cli import commands
    from resumable._cli.logsetup import configure_logging

    configure_logging()
    _import_from_cwd()
    return asyncio.run(commands.run(args, sys.stdout))


def _keygen(path: Path | None) -> int:
    from resumable._keys import new_key, write_key_file

    key = new_key()
    if path is None:
        print(key)
        return ExitCode.OK
    try:
        write_key_file(path, key)
    except FileExistsError:
        raise CommandError(
            f"{path} exists; it may hold the key your records are signed with, so it is "
            "not replaced. Choose another path, or remove it yourself.",
            ExitCode.USAGE,
        ) from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}", ExitCode.USAGE) from None
    print(f"wrote a new key to {path} (mode 0600)", file=sys.stderr)
    return ExitCode.OK


def _fail(message: str, code: ExitCode) -> int:
    # Messages quote the store's text (ids, function names, error texts):
    # escaped like everything else, so the error stays one line.
    sys.stdout.flush()
    print(f"resumable: {safe.text(message)}", file=sys.stderr)
    return int(code)
