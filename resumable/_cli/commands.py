"""The commands that read or change executions: list, resume, cancel and
recover (`show`, `gc` and `migrate` have modules of their own).

What they print from the store goes through `safe.text`: table cells in
`formatting.table`, the rest here; error messages in `_cli.main`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pprint
import time
from typing import Any, TextIO

from resumable import _config, _executions
from resumable._cli import formatting as fmt
from resumable._cli import safe
from resumable._cli.exitcodes import CommandError, ExitCode, for_error
from resumable.errors import (
    ExecutionLocked,
    ExecutionNotFound,
    ModuleRunsOnImport,
    ResumableError,
    describe_owner,
)
from resumable.stores.base import ExecutionRecord, Store
from resumable.stores.url import parse_store_url


def open_store(url: str | None) -> Store:
    """The store the command works on, with errors a person can act on.

    For a SQLite file that does not exist yet, say so instead of creating an
    empty database: that is almost always the wrong directory or URL. A file
    that may exist but cannot be looked at (a directory this user may not
    enter) is left to the store, which says "permission denied".
    """
    chosen = _config.store_choice(url)
    if not isinstance(chosen, str):  # configured in this process with a Store object
        return chosen
    try:
        parsed = parse_store_url(chosen)
    except ValueError as exc:
        raise CommandError(str(exc), ExitCode.USAGE) from None
    if parsed.scheme == "sqlite" and _missing(parsed.path):
        source = "--store" if url else "RESUMABLE_STORE" if "RESUMABLE_STORE" in os.environ else ""
        raise CommandError(
            f"no store at {os.path.abspath(parsed.path)}: nothing has run with it yet. HINT: "
            + (
                f"check {source}"
                if source
                else "run this where your jobs run (the default store is "
                ".resumable/state.db in the current directory), or pass --store"
            ),
            ExitCode.STORE_UNAVAILABLE,
        )
    try:
        return _config.resolve_store(chosen)
    except ValueError as exc:
        raise CommandError(str(exc), ExitCode.USAGE) from None


def _missing(path: str) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:  # PermissionError and the like: not known to be missing
        return False
    return False


async def run(args: argparse.Namespace, out: TextIO) -> int:
    module, name = COMMANDS[args.command]
    command = getattr(importlib.import_module(module), name)
    store = open_store(args.store)
    try:
        return int(await command(args, store, out))
    finally:
        await store.close()


async def list_(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    views = await _executions.list_executions(
        store=store, status=args.status, function=args.function, limit=args.limit
    )
    if args.json:
        executions = [fmt.execution_json(view) for view in views]
        fmt.dump({"store": store.url, "executions": executions}, out)
        return ExitCode.OK
    if not views:
        given = (("status", args.status), ("function", args.function))
        filters = ", ".join(f"{name}={value}" for name, value in given if value)
        found = f"no executions in {store.url}" + (f" with {filters}" if filters else "")
        out.write(safe.text(found) + "\n")
        return ExitCode.OK
    now = time.time()
    # Child executions right under their parent, indented by depth.
    rows = [
        (
            "  " * depth + view.id,
            view.name,
            fmt.state(view),
            fmt.ago(view.created_at, now),
            fmt.ran_text(view, now),
            str(view.attempts),
            fmt.error_line(view.error) or "",
        )
        for depth, view in fmt.families(views)
    ]
    fmt.table(rows, ("ID", "FUNCTION", "STATUS", "CREATED", "RAN", "ATTEMPTS", "ERROR"), out)
    unsigned = sum(view.unsigned for view in views)
    if unsigned:
        out.write(
            f"{unsigned} of them unsigned: written without a key (by an older release), so "
            "their records are refused while a key is set; " + fmt.unsigned_hint("--all") + "\n"
        )
    return ExitCode.OK


def _importable(record: ExecutionRecord) -> None:
    """Import the function now, so that a failing import is reported as
    such, not as the execution failing."""
    from resumable.runtime import engine

    try:
        engine.resolve_target(record)
    except ModuleRunsOnImport as exc:
        raise CommandError(str(exc), ExitCode.NOT_IMPORTABLE) from None
    except Exception as exc:
        module = record.function.partition(":")[0]
        raise CommandError(
            f"cannot import {record.function} here ({type(exc).__name__}: {exc}). HINT: run "
            f"from your project's directory, or set PYTHONPATH so that `import {module}` works",
            ExitCode.NOT_IMPORTABLE,
        ) from None


def _outcome_error(execution_id: str, error: BaseException) -> CommandError:
    if isinstance(error, ResumableError):
        return CommandError(str(error), for_error(error))
    return CommandError(
        f"execution {execution_id!r} failed: {type(error).__name__}: {error}. "
        f"HINT: `resumable show {execution_id}` shows the traceback",
        ExitCode.EXECUTION_FAILED,
    )


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return None


async def resume(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    record = await store.get(args.id)
    if record is None:
        raise ExecutionNotFound(args.id, store.url)
    if record.status != "completed":
        _importable(record)
    try:
        result = await _executions.resume(args.id, store=store, on_code_change=args.on_code_change)
    except Exception as exc:
        raise _outcome_error(args.id, exc) from None
    if args.json:
        fmt.dump(
            {
                "id": args.id,
                "status": "completed",
                "result": _jsonable(result),
                "result_repr": repr(result),
            },
            out,
        )
    else:
        # A result's repr is the user's (or the store's) text: escaped line by line.
        shown = pprint.pformat(result, sort_dicts=False).split("\n")
        out.write("\n".join(safe.text(line) for line in shown) + "\n")
    return ExitCode.OK


async def cancel(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    record = await store.get(args.id)
    if record is None:
        raise ExecutionNotFound(args.id, store.url)
    if record.status != "running":
        message = f"execution {args.id} already {record.status}: nothing to cancel"
        requested = False
    else:
        await _executions.cancel(args.id, store=store)
        record = await store.get(args.id) or record
        requested = record.status == "running"
        if requested:
            message = (
                f"cancel requested: {describe_owner(record.owner)} stops execution {args.id} "
                "at its next await (within about a second). Its checkpoints are kept; "
                f"`resumable resume {args.id}` continues it"
            )
        else:
            message = f"execution {args.id} cancelled (it had no live owner); checkpoints kept"
    if args.json:
        fmt.dump({"id": args.id, "status": record.status, "requested": requested}, out)
    else:
        out.write(safe.text(message) + "\n")
    return ExitCode.OK


async def recover(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    outcomes = await _executions.recover(store=store, on_code_change=args.on_code_change)
    report: list[dict[str, str | None]] = []
    for execution_id, outcome in outcomes.items():
        record = await store.get(execution_id)
        if isinstance(outcome, ExecutionLocked):
            kind, error = "skipped", "another process took it over first"
        elif isinstance(outcome, BaseException):
            kind, error = "failed", f"{type(outcome).__name__}: {outcome}"
        else:
            kind, error = "completed", None
        name = record.name if record else "?"
        report.append({"id": execution_id, "name": name, "outcome": kind, "error": error})
    if args.json:
        fmt.dump({"store": store.url, "recovered": report}, out)
    elif not report:
        out.write(f"nothing to recover in {store.url}: no execution has lost its owner\n")
    else:
        rows = [(str(r["id"]), str(r["name"]), str(r["outcome"]), r["error"] or "") for r in report]
        fmt.table(rows, ("ID", "FUNCTION", "OUTCOME", "ERROR"), out)
    failed = any(r["outcome"] == "failed" for r in report)
    return ExitCode.EXECUTION_FAILED if failed else ExitCode.OK


# Each command's module and function, imported when it runs: `list` does
# not pay for show's rendering, migrate's signing or the engine.
COMMANDS = {
    "list": ("resumable._cli.commands", "list_"),
    "show": ("resumable._cli.show", "show"),
    "resume": ("resumable._cli.commands", "resume"),
    "cancel": ("resumable._cli.commands", "cancel"),
    "recover": ("resumable._cli.commands", "recover"),
    "gc": ("resumable._cli.gc", "gc"),
    "migrate": ("resumable._cli.migrate", "migrate"),
}
