"""`resumable migrate --sign [ID ...] [--all] [--dry-run]`: sign the records
of executions written without a key (see resumable/_migrate.py).

One line per execution says what was done; records left as they were
follow it, indented, with the reason. Ids, keys and reasons come from the
store: escaped (`safe.text`) like everything else the CLI prints.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from resumable import _config
from resumable._cli import formatting as fmt
from resumable._cli import safe
from resumable._cli.exitcodes import CommandError, ExitCode
from resumable._migrate import ExecutionMigration, MigrationReport, sign_unsigned
from resumable.stores.base import Store
from resumable.stores.url import redact_url


async def migrate(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    _check_usage(args)
    try:
        signed = _config.codec_for(store).signed
    except ValueError as exc:  # a fallback key without a key to write with
        raise CommandError(str(exc), ExitCode.USAGE) from None
    if not signed:
        raise CommandError(
            "signing needs a secret key: set RESUMABLE_SECRET_KEY to the key this store's "
            "processes will use (`resumable keygen` makes one), then run this again",
            ExitCode.USAGE,
        )
    report = await sign_unsigned(store, None if args.all else args.ids, dry_run=args.dry_run)
    if args.json:
        fmt.dump(
            {
                "store": store.url,
                "dry_run": report.dry_run,
                "executions": [_json(e) for e in report.executions],
            },
            out,
        )
    else:
        _print(report, store, out)
    return _exit_code(report)


def _check_usage(args: argparse.Namespace) -> None:
    if not args.sign:
        raise CommandError(
            "say what to migrate: --sign (sign records written without a key)", ExitCode.USAGE
        )
    if bool(args.ids) == bool(args.all):
        raise CommandError(
            "give the ids of the executions to sign, or --all (not both)", ExitCode.USAGE
        )


def _print(report: MigrationReport, store: Store, out: TextIO) -> None:
    if not report.executions:
        out.write(safe.text(f"no executions in {redact_url(store.url)}") + "\n")
        return
    for execution in report.executions:
        line = f"{execution.execution_id}: {_said(execution, report.dry_run)}"
        out.write(safe.text(line) + "\n")
        for problem in execution.problems:
            out.write("  " + safe.text(f"left as it was: {problem.key}: {problem.reason}") + "\n")


def _said(execution: ExecutionMigration, dry_run: bool) -> str:
    count = execution.signed
    records = f"{count} record{'' if count == 1 else 's'}"
    if execution.outcome == "signed":
        said = f"would sign {records}" if dry_run else f"signed {records}"
    elif execution.outcome == "unchanged":
        said = "nothing to do (no unsigned record)"
    elif execution.outcome == "skipped":
        said = f"skipped: running, {execution.reason}"
    else:
        said = "not found"
    if execution.problems:
        said += f"; {len(execution.problems)} left as they were (below)"
    return said


def _json(execution: ExecutionMigration) -> dict[str, Any]:
    return {
        "id": execution.execution_id,
        "outcome": execution.outcome,
        "records_signed": execution.signed,
        "reason": execution.reason,
        "problems": [{"key": p.key, "reason": p.reason} for p in execution.problems],
    }


def _exit_code(report: MigrationReport) -> int:
    """0 when every execution is fully signed; else the most telling
    failure: records left unsigned, an id not found, one still running."""
    executions = report.executions
    if any(e.problems for e in executions):
        return ExitCode.CORRUPT
    if any(e.outcome == "not_found" for e in executions):
        return ExitCode.NOT_FOUND
    if any(e.outcome == "skipped" for e in executions):
        return ExitCode.LOCKED
    return ExitCode.OK
