"""The command line's grammar: commands, options, and durations like "7d".

Imported for every command, `--help` included, so it imports next to
nothing of the library: the engine (for --on-code-change) only when an
option that needs it is parsed, by which time the command will run.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from resumable._cli.exitcodes import epilog
from resumable.runtime import ids
from resumable.stores.statuses import STATUSES

DESCRIPTION = """\
Inspect and drive resumable executions: list them, watch their progress,
resume, cancel, recover orphaned ones, delete old ones, and sign stores
written without a key (migrate --sign).

The store is --store URL, else $RESUMABLE_STORE, else .resumable/state.db in
the current directory (the library's default). Functions are imported by
their stored reference from the current directory and $PYTHONPATH.
"""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """'30m', '12h', '7d', '45s' -> seconds; argparse reports the ValueError."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected a number and a unit, s, m, h or d (30m, 12h, 7d)"
        )
    return float(match[1]) * _UNITS[match[2]]


def execution_id(text: str) -> str:
    """An ID argument, checked as the library checks ids (argparse exits
    with 2 and this message): bytes that are not UTF-8 arrive here as lone
    surrogates."""
    try:
        return ids.check(text, "ID")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("ID: ")) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected an integer >= 1")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.01 <= value <= 3600:
        raise argparse.ArgumentTypeError(
            f"invalid interval {text!r}: expected seconds between 0.01 and 3600"
        )
    return value


def _common(top: bool) -> argparse.ArgumentParser:
    """--store and --json, accepted before or after the command. After it,
    their default is SUPPRESS so that the value given before is kept."""
    common = argparse.ArgumentParser(add_help=False)
    default = None if top else argparse.SUPPRESS
    common.add_argument(
        "--store",
        metavar="URL",
        default=default,
        help="sqlite:///path.db, redis://host:6379/0, ... (default: $RESUMABLE_STORE, "
        "else .resumable/state.db)",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print JSON for machines (stable keys) instead of tables",
    )
    return common


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resumable",
        description=DESCRIPTION,
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(top=True)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common(top=False)]

    listing = sub.add_parser("list", parents=common, help="executions, newest first")
    listing.add_argument("--status", choices=STATUSES, help="only executions with this status")
    listing.add_argument(
        "--function", metavar="NAME", help="only this function ('module:qualname' or its name)"
    )
    listing.add_argument(
        "--limit", type=_positive_int, default=50, metavar="N", help="at most N (default 50)"
    )

    show = sub.add_parser(
        "show", parents=common, help="status, progress, timings and error of one execution"
    )
    show.add_argument("id", metavar="ID", type=execution_id)
    show.add_argument(
        "--values",
        action="store_true",
        help="also print argument values (decodes them: pickled ones need your code importable)",
    )
    show.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="redraw live progress bars until the execution ends; exit 0 if it completed",
    )
    show.add_argument(
        "--interval",
        type=_interval,
        default=0.5,
        metavar="SECONDS",
        help="how often --follow reads the store (default 0.5)",
    )

    resume = sub.add_parser(
        "resume", parents=common, help="continue an execution here and print its result"
    )
    resume.add_argument("id", metavar="ID", type=execution_id)
    _on_code_change(resume)

    cancel = sub.add_parser(
        "cancel", parents=common, help="stop an execution at its next await (resumable later)"
    )
    cancel.add_argument("id", metavar="ID", type=execution_id)

    recover = sub.add_parser(
        "recover", parents=common, help="resume here every execution whose owner is gone"
    )
    _on_code_change(recover)

    gc = sub.add_parser("gc", parents=common, help="delete executions that ended before a cutoff")
    gc.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="DURATION",
        help="ended (completed, failed, cancelled) more than this long ago: 30m, 12h, 7d",
    )
    gc.add_argument("--dry-run", action="store_true", help="list them, delete nothing")
    gc.add_argument(
        "--compact",
        action="store_true",
        help="keep failed and cancelled ones resumable: delete only their records that no "
        "resume reads (those of finished iterations and items), not the executions",
    )

    migrate = sub.add_parser(
        "migrate",
        parents=common,
        help="sign the records of executions written without a key (--sign)",
        description="Sign, with the configured secret key (RESUMABLE_SECRET_KEY), every "
        "unsigned record of the given executions (and their child executions), or of all "
        "of them: stores written by a release that did not sign records are refused once "
        "a key is set. Run it only on a store that only you have written: it signs "
        "whatever it finds there, pickles included (it never runs them), which is your "
        "statement that they are yours. Each execution is rewritten in one transaction "
        "under its lease; one that a live process holds is skipped. Records signed "
        "already are left alone, so running it twice changes nothing.",
    )
    migrate.add_argument(
        "--sign",
        action="store_true",
        help="sign unsigned records (the only migration there is; required)",
    )
    migrate.add_argument("ids", metavar="ID", nargs="*", type=execution_id)
    migrate.add_argument("--all", action="store_true", help="every execution in the store")
    migrate.add_argument(
        "--dry-run", action="store_true", help="say what would be signed, write nothing"
    )

    keygen = sub.add_parser(
        "keygen",
        help="print a new secret key for signing records (RESUMABLE_SECRET_KEY)",
        description="Print a new random secret key. Give it to every process that uses the "
        "store, as RESUMABLE_SECRET_KEY, or write it with --file and point "
        "RESUMABLE_SECRET_KEY_FILE at the file; to rotate, make the old key a fallback "
        "(RESUMABLE_SECRET_KEY_FALLBACKS) until every execution signed with it has ended. "
        "Without either, SQLite stores use a per-user key file made on first use (see "
        "`resumable --help`) and Redis stores refuse to run.",
    )
    keygen.add_argument(
        "--file",
        type=Path,
        metavar="PATH",
        help="write the key to PATH (created readable by you only; never overwritten) "
        "instead of printing it",
    )

    sub.add_parser(
        "demo", help="run a pipeline, kill it with SIGKILL, resume it (.resumable/state.db)"
    )
    return parser


def _code_change_policy(text: str) -> str:
    from resumable.runtime.settings import ON_CODE_CHANGE

    if text not in ON_CODE_CHANGE:
        raise argparse.ArgumentTypeError(
            f"invalid choice {text!r} (choose from {', '.join(ON_CODE_CHANGE)})"
        )
    return text


def _on_code_change(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--on-code-change",
        type=_code_change_policy,
        metavar="POLICY",
        default="error",
        help="if the function's code changed since the execution started: error "
        "(default), continue while the checkpoints still line up, or restart",
    )
