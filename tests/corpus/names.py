"""Where names live: a comprehension after the loop reusing a carried name,
a temporary captured by a lambda, module globals rebound with `global`, the
loop variable read after the loop, a local deleted in the body."""

from __future__ import annotations

import re

from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed, resumable

SALES = [("eu", 120), ("us", 200), ("eu", 30), ("apac", 90), ("us", 60), ("apac", 45), ("eu", 5)]


@exact(
    why="`region` and `total` are loop state AND the names of a comprehension "
    "after the loop (inlined into the function on 3.12+, PEP 709): the "
    "comprehension's use does not make them temporaries of the loop."
)
@resumable
async def comprehension_after_loop(log: str) -> dict[str, object]:
    """`report = [f"{region}: {total}" for region, total in per_region.items()]`
    after a loop that carries `total` and `region`."""
    per_region: dict[str, int] = {}
    total = 0
    region = "none"
    async for n, (where, amount) in aiter_checkpointed(enumerate(SALES)):
        record(log, f"sale:{n}")
        per_region[where] = per_region.get(where, 0) + amount
        total += amount
        if amount > 100:
            region = where
    top_region = region
    grand_total = total
    report = [f"{region}: {total}" for region, total in per_region.items()]
    return {"report": report, "total": grand_total, "top": top_region}


LINE = re.compile(r"(?P<level>[A-Z]+) (?P<service>\w+) (?P<ms>\d+)ms")
LOG_LINES = [
    "INFO api 12ms",
    "WARN db 340ms",
    "INFO api 8ms",
    "ERROR queue 1200ms",
    "INFO db 45ms",
    "WARN api 210ms",
]


@exact(
    why="`match` is a temporary (assigned before it is read each iteration) "
    "captured by a lambda, hence a cell; it is an unpicklable re.Match. It is "
    "dead at the loop head: not carried, so not refused."
)
@resumable
async def lambda_captures_match(log: str) -> dict[str, object]:
    """`sorted(fields, key=lambda f: match.start(f))` with `match` a temporary."""
    slow: dict[str, int] = {}
    layouts = []
    async for n, line in aiter_checkpointed(enumerate(LOG_LINES)):
        record(log, f"parse:{n}")
        match = LINE.match(line)
        if match is None:
            continue
        layouts.append(sorted(match.groupdict(), key=lambda field: -match.start(field)))
        if int(match["ms"]) > 100:
            slow[match["service"]] = slow.get(match["service"], 0) + 1
    return {"slow": slow, "layouts": layouts}


processed = 0
last_seen = ""


@exact(
    why="`global processed` rebinding in the body is as visible in the bytecode "
    "as a local's (STORE_GLOBAL); the fresh process starts with the module's "
    "initial values, so the globals are state and must be carried (or, at "
    "worst, refused): silently restarting them from 0 is the bug."
)
@resumable
async def global_counters(log: str) -> dict[str, object]:
    """Module globals rebound in the body with `global`."""
    global processed, last_seen  # noqa: PLW0603 - the shape under test
    names = []
    async for i in aiter_checkpointed(range(9)):
        record(log, f"global:{i}")
        processed += 1
        last_seen = f"file-{i}"
        names.append(last_seen)
    return {"processed": processed, "last_seen": last_seen, "names": names}


@exact()
@resumable
async def loop_variable_after_loop(log: str) -> dict[str, object]:
    """The loop variable and a body temporary read after the loop (Python
    keeps the last values), plus a `del` in the body."""
    total = 0
    item = -1
    async for item in aiter_checkpointed(range(8)):
        record(log, f"item:{item}")
        scratch = [item] * 3
        total += sum(scratch)
        del scratch
    return {"last_item": item, "total": total}
