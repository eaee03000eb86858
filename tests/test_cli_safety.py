"""Text from the store reaches the terminal escaped: no newline forges a row,
no escape sequence reaches the terminal, no bidi override reorders a line,
and rich markup shows as written; `--json` keeps the real values."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import unicodedata

import pytest
from jobs import watched
from support.clirun import cli, cli_env, start_cli
from test_cli import one_line_error

from resumable import _config
from resumable._cli import progress, safe
from resumable._cli.console import render_text
from resumable._cli.exitcodes import ExitCode
from resumable.runtime.wire import LoopProgress, Progress

# What someone who can write the store file may put in it. runtime/ids.py
# refuses such ids for new executions, so they are planted with sqlite3.
HOSTILE = {
    "newline": "ok\nforged-row  digest  completed  1s ago",
    "csi": "red\x1b[31mALERT\x1b[0m",
    "osc": "title\x1b]0;pwned\x07",
    "markup": "[bold red]loud[/bold red]",
    "bidi": "abc\u202edcba\u2066x\u2069",
    "c1": "c1\x9b31mcsi",
    "carriage": "over\rwrite",
    "clear": "[bold]wipe\x1b[2J",
}
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def raw_controls(text: str) -> list[str]:
    """Characters a terminal would act on, but the newlines between lines."""
    return [
        char
        for char in text
        if char != "\n" and (unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs") or char in BIDI)
    ]


def assert_clean(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    for stream in (result.stdout, result.stderr):
        assert raw_controls(stream) == [], repr(stream)
        assert not any(line.startswith("forged-row") for line in stream.splitlines())


SIGNATURE = 32  # an HMAC-SHA256, after a signed blob's tag


@pytest.fixture(name="planted")
async def _planted(sqlite) -> dict[str, str]:
    """One execution per HOSTILE id, run through the library, then rewritten
    with sqlite3 as an attacker would: id, name, function, location, owner,
    error text and result all hostile. Two of them failed, one running.

    The attacker here is after the terminal, not the signatures (those are
    test_tampering's): the arguments and result are signed with the store's
    own key for their new ids, so the commands get as far as printing them."""
    for key in HOSTILE:
        await watched.watched.options(execution_id=f"plain-{key}", store=sqlite)(2, 0.0)
    await sqlite.close()  # (reopened by the fixture's own close: a no-op)
    codec = _config.codec_for(sqlite)
    with contextlib.closing(sqlite3.connect(sqlite.path)) as db, db:
        for key, hostile in HOSTILE.items():
            (args,) = db.execute(
                "SELECT args FROM executions WHERE id = ?", (f"plain-{key}",)
            ).fetchone()
            args = codec.loads(args, execution_id=f"plain-{key}", key="arguments")
            db.execute(
                "UPDATE executions SET id = ?, name = ?, function = ?, location = ?, "
                "owner = ?, args = ?, result = ? WHERE id = ?",
                (
                    hostile,
                    f"name-{hostile}",
                    f"jobs.nowhere:fn-{hostile}",
                    f"/src/{hostile}.py:7",
                    f"host-{hostile}:1:1",
                    codec.dumps(args, execution_id=hostile, key="arguments"),
                    codec.dumps(f"result-{hostile}", execution_id=hostile, key="result"),
                    f"plain-{key}",
                ),
            )
            moved = db.execute(
                "SELECT key, value FROM checkpoints WHERE execution_id = ?", (f"plain-{key}",)
            ).fetchall()
            for record, signed in moved:  # signed again for the id they move to
                body = signed[1 + SIGNATURE :]
                db.execute(
                    "UPDATE checkpoints SET execution_id = ?, value = ? "
                    "WHERE execution_id = ? AND key = ?",
                    (
                        hostile,
                        b"s" + codec._sign(body, hostile, record) + body,
                        f"plain-{key}",
                        record,
                    ),
                )
        traceback = (
            "Traceback (most recent call last):\n  x\x1b[2J\nValueError: boom\x1b]0;t\x07\rforged"
        )
        for hostile in (HOSTILE["csi"], HOSTILE["newline"]):
            db.execute(
                "UPDATE executions SET status = 'failed', error_text = ? WHERE id = ?",
                (traceback, hostile),
            )
        db.execute(
            "UPDATE executions SET status = 'running', finished_at = NULL, "
            "lease_expires_at = 0 WHERE id = ?",
            (HOSTILE["osc"],),
        )
    return HOSTILE


class TestListAndShow:
    """`list`, `show` and their JSON escape what the store holds."""

    async def test_list(self, url, planted):
        result = cli("list", store=url)
        assert result.returncode == 0, result.stderr
        assert_clean(result)
        _header, *rows = result.stdout.splitlines()
        assert len(rows) == len(planted)  # no forged row
        assert any(row.startswith("ok\\nforged-row") for row in rows)
        assert any("red\\x1b[31mALERT\\x1b[0m" in row for row in rows)
        assert any("\\[bold red]loud\\[/bold red]" in row for row in rows)
        assert any("abc\\u202edcba" in row for row in rows)

    async def test_json_round_trips(self, url, planted):
        result = cli("--json", "list", store=url)
        assert result.returncode == 0, result.stderr
        assert_clean(result)
        executions = json.loads(result.stdout)["executions"]
        assert sorted(e["id"] for e in executions) == sorted(planted.values())
        assert {e["name"] for e in executions} == {f"name-{h}" for h in planted.values()}

    @pytest.mark.parametrize("key", sorted(HOSTILE))
    async def test_show(self, url, planted, key):
        hostile = planted[key]
        result = cli("show", hostile, store=url)
        assert result.returncode == 0, result.stderr
        assert_clean(result)
        assert result.stdout.startswith(f"execution   {safe.text(hostile)}\n")
        shown = cli("--json", "show", hostile, store=url)
        assert json.loads(shown.stdout)["id"] == hostile
        assert_clean(shown)

    async def test_show_values_follow_and_error_text(self, url, planted):
        hostile = planted["csi"]
        for command in (("show", hostile, "--values"), ("show", hostile, "--follow")):
            result = cli(*command, store=url)
            assert result.returncode in (ExitCode.OK, ExitCode.EXECUTION_FAILED), result.stderr
            assert_clean(result)
        shown = cli("show", hostile, store=url).stdout
        assert "ValueError: boom\\x1b]0;t\\x07\\rforged" in shown
        followed = cli("--json", "show", hostile, "--follow", store=url)
        assert json.loads(followed.stdout.splitlines()[-1])["id"] == hostile

    async def test_follow_a_waiting_one(self, url, planted):
        """Its owner is gone, so --follow waits: read a frame, then stop it."""
        follower = start_cli("show", planted["osc"], "--follow", "--interval", "0.05", store=url)
        try:
            assert follower.stdout is not None
            frame = [follower.stdout.readline()]
            while not frame[-1].startswith("waiting") and len(frame) < 10:
                frame.append(follower.stdout.readline())
        finally:
            follower.kill()
            rest, errors = follower.communicate()
        assert raw_controls("".join(frame) + rest + errors) == []
        assert "title\\x1b]0;pwned\\x07" in frame[0]
        assert any("resumable resume title\\x1b]0;pwned\\x07" in line for line in frame), frame


class TestActions:
    """resume, cancel, gc and error messages escape store text too."""

    async def test_resume_prints_an_escaped_result(self, url, planted):
        result = cli("resume", planted["markup"], store=url)
        assert result.returncode == 0, result.stderr
        assert_clean(result)
        assert "result-\\[bold red]loud" in result.stdout

    async def test_error_messages_quote_escaped_text(self, url, planted):
        # A failed one whose function cannot be imported: the message names it.
        result = cli("resume", planted["newline"], store=url)
        one_line_error(result, ExitCode.NOT_IMPORTABLE, "cannot import jobs.nowhere:fn-ok\\n")
        assert_clean(result)
        missing = cli("show", "gone\x1b[2J\x07", store=url)
        one_line_error(missing, ExitCode.NOT_FOUND, "gone\\x1b[2J\\x07")
        assert_clean(missing)

    async def test_cancel_and_gc(self, url, planted):
        for key in ("bidi", "osc"):
            result = cli("cancel", planted[key], store=url)
            assert result.returncode == 0, result.stderr
            assert_clean(result)
        swept = cli("gc", "--older-than", "0s", "--dry-run", store=url)
        assert swept.returncode == 0, swept.stderr
        assert_clean(swept)
        _header, *rows, summary = swept.stdout.splitlines()
        assert len(rows) == len(planted)
        assert summary.startswith(f"would delete {len(planted)} executions")
        recovered = cli("recover", store=url)
        assert_clean(recovered)


class TestSafeText:
    """`safe.text` is the one escaping; progress lines use it before cutting."""

    def test_escapes(self):
        assert safe.text("a\nb\x1b[31m\x9b\u202e\ud800\t") == "a\\nb\\x1b[31m\\x9b\\u202e\\ud800\\t"
        assert safe.text("[bold]x[/bold] args[0] [1, 2]") == "\\[bold]x\\[/bold] args[0] [1, 2]"
        assert safe.text("plain text, ünïcode ✓") == "plain text, ünïcode ✓"

    def test_json_keeps_values(self):
        value = {"id": "a\x1b\u202e\x85\ud800b"}
        dumped = safe.json(value)
        assert raw_controls(dumped.replace("\n", "")) == []
        assert json.loads(dumped) == value

    def test_progress_names_are_escaped_before_the_cut(self):
        loop = LoopProgress(
            position="#0",
            site="digest:loop0(x)\x1b]0;t\x07\n[bold]",
            location="/src/a\nb.py:3",
            done=1,
            total=2,
            finished=False,
        )
        lines = render_text(progress.Bars().view(Progress(loops=(loop,))), 60).splitlines()
        assert len(lines) == 1 and len(lines[0]) <= 60
        assert raw_controls(lines[0]) == []
        assert re.search(r"loop0\(x\)\\x1b", lines[0])


class TestPiped:
    """Into a pipe rich writes no control code, even when asked for colour."""

    async def test_no_escape_codes(self, url, planted):
        env = cli_env(FORCE_COLOR="1", TERM="xterm-256color", COLUMNS="40")
        hostile = planted["clear"]
        for command in (
            ("list",),
            ("show", hostile),
            ("show", hostile, "--follow"),
            ("gc", "--older-than", "1d"),
        ):
            result = cli(*command, store=url, env=env)
            assert result.returncode in (ExitCode.OK, ExitCode.EXECUTION_FAILED), result.stderr
            assert "\x1b" not in result.stdout, (command, result.stdout)
        shown = cli("show", hostile, store=url, env=env).stdout
        assert shown.startswith("execution   \\[bold]wipe\\x1b[2J\n"), shown
        listed = cli("list", store=url, env=env).stdout
        assert "\\[bold]wipe\\x1b[2J" in listed  # unbounded: not cut to COLUMNS
