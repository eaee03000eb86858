"""Execution ids are checked where they enter the API: a non-empty str of
at most 200 characters that is valid UTF-8; a new execution's id also
holds no control character. The command line exits with 2 and one line."""

from __future__ import annotations

import pytest
from jobs import carry
from support.clirun import cli

from resumable import MemoryStore, cancel, resume, status
from resumable.runtime.ids import EXECUTION_ID_MAX

NOT_UTF8 = "job-\udcff\udcfe"  # what Python makes of the bytes b"job-\xff\xfe" in argv
TOO_LONG = "x" * (EXECUTION_ID_MAX + 1)


class TestNewExecutions:
    @pytest.mark.parametrize(
        ("bad", "message"),
        [
            ("", "a non-empty str"),
            (7, "a non-empty str"),
            (TOO_LONG, "has 201 characters; the most is 200"),
            (NOT_UTF8, "is not valid UTF-8 (character 4 is a lone surrogate"),
            ("FAKE\n  done", r"holds a control character ('\n' at 4)"),
            ("\x1b]0;pwned\x07", r"holds a control character ('\x1b' at 0)"),
        ],
    )
    def test_a_bad_id_is_refused_naming_what_is_wrong(self, bad, message):
        with pytest.raises(ValueError, match="options") as refused:
            carry.numbers.options(execution_id=bad)
        assert message in str(refused.value)

    async def test_the_longest_id_and_any_printable_text_are_fine(self):
        memory = MemoryStore()
        for good in ("x" * EXECUTION_ID_MAX, "nightly 2026-12-03 [résumé] 日本"):
            await carry.numbers.options(execution_id=good, store=memory)(2)
            assert (await status(good, store=memory)).status == "completed"


class TestReadingCalls:
    @pytest.mark.parametrize("call", [resume, status, cancel])
    async def test_ids_that_are_not_utf8_or_too_long_are_refused(self, call):
        memory = MemoryStore()
        for bad, message in ((NOT_UTF8, "not valid UTF-8"), (TOO_LONG, "201 characters")):
            with pytest.raises(ValueError, match=message):
                await call(bad, store=memory)


class TestCommandLine:
    @pytest.mark.parametrize("command", ["show", "resume", "cancel"])
    @pytest.mark.parametrize(
        ("bad", "message"),
        [(NOT_UTF8, "is not valid UTF-8"), (TOO_LONG, "has 201 characters")],
    )
    def test_exit_2_with_one_line(self, url, command, bad, message):
        result = cli(command, bad, store=url)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        [error] = [line for line in result.stderr.splitlines() if "error:" in line]
        assert message in error
