"""`--json` output is an interface: byte for byte what the release before
the rich rewrite printed for the same store (tests/data/cli_json/).

What differs from one run to the next (clock readings, the temporary
store's path, where the tests live, traceback line numbers of the library)
is masked on both sides; every other byte, key order and indentation
included, must match. `RESUMABLE_REWRITE_GOLDEN=1` rewrites the files: only
for a deliberate, documented change of the JSON interface.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from support.clirun import cli
from support.crashing import TESTS
from test_cli import _seeded  # noqa: F401  (the fixture: three ended executions)

GOLDEN = Path(__file__).parent / "data" / "cli_json"
_CLOCK = re.compile(
    r'"(created_at|started_at|finished_at|updated_at|cutoff|ran_seconds)": [0-9.e+-]+'
)
_TRACEBACK = re.compile(r'"traceback": "(?:[^"\\]|\\.)*"')

COMMANDS = {
    "list": ("list", "--json"),
    "list_failed": ("list", "--status", "failed", "--json"),
    "show_completed": ("show", "done-1", "--json"),
    "show_failed": ("show", "failed-1", "--json"),
    "show_cancelled": ("show", "cancelled-1", "--json"),
    "show_values": ("show", "done-1", "--values", "--json"),
    "follow_ended": ("show", "done-1", "--follow", "--json"),
    "cancel_ended": ("cancel", "done-1", "--json"),
    "recover_none": ("recover", "--json"),
    "gc_dry_run": ("gc", "--older-than", "0s", "--dry-run", "--json"),
    "gc_compact_dry_run": ("gc", "--older-than", "0s", "--compact", "--dry-run", "--json"),
}


def _masked(output: str, url: str) -> str:
    output = output.replace(url, "<store>").replace(str(TESTS), "<tests>")
    output = _CLOCK.sub(lambda m: f'"{m[1]}": <clock>', output)
    return _TRACEBACK.sub('"traceback": <traceback>', output)


class TestJsonUnchanged:
    """Each command's --json output over a fixed set of executions is the recorded one."""

    @pytest.mark.parametrize("name", sorted(COMMANDS))
    async def test_byte_for_byte(self, url, seeded, name):
        result = cli(*COMMANDS[name], store=url)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout
        got = _masked(result.stdout, url)
        golden = GOLDEN / f"{name}.json"
        if os.environ.get("RESUMABLE_REWRITE_GOLDEN") == "1":
            golden.write_text(got, encoding="utf-8")
        assert got == golden.read_text(encoding="utf-8")
