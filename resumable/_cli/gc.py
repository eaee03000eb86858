"""`resumable gc --older-than DURATION [--dry-run] [--compact]`: print what
`resumable.gc()` deleted, compacted or skipped (the library decides).

Ids and names come from the store: escaped (`safe.text`, and in tables
`formatting.table`) like everything else the CLI prints.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from resumable._cli import formatting as fmt
from resumable._cli import safe
from resumable._cli.exitcodes import ExitCode
from resumable._gc import gc as collect_garbage
from resumable.stores.base import ExecutionRecord, Store
from resumable.stores.url import redact_url


async def gc(args: argparse.Namespace, store: Store, out: TextIO) -> int:
    report = await collect_garbage(
        older_than=args.older_than, dry_run=args.dry_run, compact=args.compact, store=store
    )
    deleted, compacted, skipped = report.deleted, report.compacted, report.skipped
    if args.json:
        fmt.dump(
            {
                "store": store.url,
                "cutoff": report.cutoff,
                "dry_run": report.dry_run,
                "executions": [_gc_json(r) for r in deleted],
                "compacted": [
                    {**_gc_json(c.record), "records_removed": c.records_removed} for c in compacted
                ],
                "skipped": [_gc_json(r) for r in skipped],
            },
            out,
        )
        return ExitCode.OK
    verb = "would delete" if args.dry_run else "deleted"
    if deleted:
        rows = [(r.id, r.name, r.status, fmt.when(r.finished_at or r.updated_at)) for r in deleted]
        fmt.table(rows, ("ID", "FUNCTION", "STATUS", "ENDED"), out)
    summary = (
        f"{verb} {len(deleted)} execution{'' if len(deleted) == 1 else 's'} that ended before "
        f"{fmt.when(report.cutoff)} ({redact_url(store.url)})"
    )
    out.write(safe.text(summary) + "\n")
    if args.compact:
        removed = sum(c.records_removed for c in compacted)
        out.write(
            f"{'would compact' if args.dry_run else 'compacted'} {len(compacted)} failed or "
            f"cancelled execution{'' if len(compacted) == 1 else 's'} (still resumable): "
            f"{removed} record{'' if removed == 1 else 's'} that no resume reads\n"
        )
    if skipped:
        out.write(f"skipped {len(skipped)} that another process is resuming\n")
    return ExitCode.OK


_JSON_KEYS = ("id", "name", "status", "finished_at")  # of each execution in --json


def _gc_json(record: ExecutionRecord) -> dict[str, Any]:
    return {key: getattr(record, key) for key in _JSON_KEYS}
