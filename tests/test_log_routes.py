"""What a program that uses resumable sees, in a real process: nothing of
ours on stdout; silence at INFO until it configures logging; `logging`
records with the event's keys as attributes; structlog events through its
processors when it configured structlog; one line per retry, with the
exception's type name and never its message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.clirun import cli_env

SECRET = "sk-live-4f9a0c11-never-logged"

# The program: one execution of a loop with a step that fails twice and an
# amap item that fails once (each failure's message holds SECRET), then one
# JSON line on stdout. SETUP is where the application configures its logs.
PROGRAM = """\
import asyncio
import json
import logging
import sys

SETUP

import resumable
from resumable import Retry, amap, step

SECRET = {secret!r}
FAST = Retry(attempts=3, on=LookupError, wait_initial=0.001, wait_jitter=0)
failures = {{"step": 2, "item": 1}}


class Flaky(LookupError):
    pass


def fail_first(what):
    if failures[what]:
        failures[what] -= 1
        raise Flaky(f"token {{SECRET}}")


@step(retries=FAST)
async def fetch(i):
    fail_first("step")
    return i


async def double(i):
    fail_first("item")
    return 2 * i


@resumable.resumable
async def job(n, fail=False):
    total = 0
    async for i in resumable.aiter_checkpointed(range(n)):
        total += await fetch(i) if i == 1 else i
    doubled = await amap(double, range(2), retries=FAST)
    if fail:
        raise RuntimeError(f"failed with {{SECRET}}")
    return total + sum(doubled)


if __name__ == "__main__":
    fail = "fail" in sys.argv
    try:
        result = asyncio.run(job.options(execution_id="the-run")(3, fail=fail))
    except RuntimeError:
        sys.exit(3)
    print(json.dumps({{"result": result}}))
"""

NOTHING = ""
BASIC_INFO = "logging.basicConfig(level=logging.INFO)"
# A formatter that shows every attribute of a record, as JSON log
# formatters do: what `extra=` adds, and whatever else a hook put there.
EVERY_FIELD = """\
class EveryField(logging.Formatter):
    def format(self, record):
        fields = {k: str(v) for k, v in vars(record).items() if k not in ("args", "msg")}
        return json.dumps({**fields, "message": record.getMessage()})

handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(EveryField())
logging.basicConfig(level=logging.INFO, handlers=[handler])
"""
STRUCTLOG_JSON = """\
import structlog

structlog.configure(
    processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
    logger_factory=structlog.PrintLoggerFactory(sys.stderr),
)
"""
THE_LINE = json.dumps({"result": 3 + 2})  # 0 + 1 + 2, then 0 + 2
RETRY_EVENTS = ["step retried", "step retried", "item retried"]


def run(
    tmp_path: Path, setup: str, *argv: str, source: str = PROGRAM
) -> subprocess.CompletedProcess[str]:
    program = tmp_path / "program.py"
    program.write_text(source.format(secret=SECRET).replace("SETUP", setup))
    return subprocess.run(
        [sys.executable, str(program), *argv],
        env=cli_env(RESUMABLE_STORE=f"sqlite:///{tmp_path}/state.db"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def json_lines(text: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in text.splitlines()]


class TestStdout:
    """stdout holds the program's own line and nothing of ours, however logs are set up."""

    @pytest.mark.parametrize("setup", [NOTHING, BASIC_INFO, STRUCTLOG_JSON])
    def test_only_the_programs_line(self, tmp_path: Path, setup: str):
        ran = run(tmp_path, setup)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == THE_LINE + "\n"

    def test_stderr_is_silent_at_info_until_logging_is_configured(self, tmp_path: Path):
        ran = run(tmp_path, NOTHING)
        assert ran.returncode == 0, ran.stderr
        assert ran.stderr == ""

    def test_a_warning_reaches_stderr_unconfigured(self, tmp_path: Path):
        """logging's last-resort handler: WARNING and above, the message only."""
        ran = run(tmp_path, NOTHING, "fail")
        assert ran.returncode == 3
        assert ran.stdout == ""
        [line] = ran.stderr.splitlines()
        assert line.startswith("execution failed execution_id=the-run function=job seconds=")
        assert line.endswith(" error=RuntimeError")
        assert SECRET not in ran.stderr


class TestStandardLogging:
    """Without structlog configured, records of the `logging` logger "resumable"."""

    def test_basic_config_shows_the_info_lines(self, tmp_path: Path):
        ran = run(tmp_path, BASIC_INFO)
        assert ran.returncode == 0, ran.stderr
        lines = ran.stderr.splitlines()
        assert lines[0] == "INFO:resumable:execution started execution_id=the-run function=job"
        assert lines[-1].startswith(
            "INFO:resumable:execution completed execution_id=the-run function=job seconds="
        )

    def test_the_keys_are_record_attributes(self, tmp_path: Path):
        ran = run(tmp_path, EVERY_FIELD)
        assert ran.returncode == 0, ran.stderr
        records = {r["event"]: r for r in json_lines(ran.stderr) if r["name"] == "resumable"}
        started, completed = records["execution started"], records["execution completed"]
        assert (started["execution_id"], started["function"]) == ("the-run", "job")
        assert started["levelname"] == "INFO" and float(completed["seconds"]) >= 0
        # The record names the library line that logged, not the log module.
        assert started["module"] == "events", started

    def test_debug_lines_take_the_loggers_level(self, tmp_path: Path):
        (tmp_path / "quiet").mkdir()
        (tmp_path / "chatty").mkdir()
        quiet = run(tmp_path / "quiet", BASIC_INFO)
        chatty = run(
            tmp_path / "chatty",
            "logging.basicConfig(level=logging.INFO)\n"
            "logging.getLogger('resumable').setLevel(logging.DEBUG)",
        )
        assert "checkpoint written" not in quiet.stderr
        assert "DEBUG:resumable:checkpoint written execution_id=the-run" in chatty.stderr
        assert chatty.stdout == THE_LINE + "\n"


class TestStructlog:
    """With structlog configured, the events go through its processors, keys as they were."""

    def test_events_come_out_through_its_processors(self, tmp_path: Path):
        ran = run(tmp_path, STRUCTLOG_JSON)
        assert ran.returncode == 0, ran.stderr
        events = json_lines(ran.stderr)
        assert events[0] == {
            "execution_id": "the-run",
            "function": "job",
            "event": "execution started",
            "level": "info",
        }
        assert events[-1]["event"] == "execution completed"
        assert {e["event"] for e in events} == {
            "execution started",
            "step retried",
            "item retried",
            "execution completed",
        }


class TestRetries:
    """One line per retry, with the exception's type name; its message nowhere."""

    @pytest.mark.parametrize("setup", [EVERY_FIELD, STRUCTLOG_JSON], ids=["logging", "structlog"])
    def test_one_line_per_retry(self, tmp_path: Path, setup: str):
        ran = run(tmp_path, setup)
        assert ran.returncode == 0, ran.stderr
        lines = json_lines(ran.stderr)
        retries = [line for line in lines if line.get("event", "").endswith(" retried")]
        assert [line["event"] for line in retries] == RETRY_EVENTS, retries
        assert {line["error"] for line in retries} == {"Flaky"}
        assert [line["attempt"] for line in retries] in (["1", "2", "1"], [1, 2, 1])
        assert "stamina" not in ran.stderr + ran.stdout
        assert SECRET not in ran.stderr + ran.stdout

    def test_the_applications_own_stamina_retries_still_log(self, tmp_path: Path):
        """Only our retries are kept out of stamina's hooks: the program's
        own, at top level and inside a step body, are logged as stamina does."""
        own_retries = """
import stamina
from stamina.instrumentation import LoggingOnRetryHook, set_on_retry_hooks

set_on_retry_hooks([LoggingOnRetryHook])


async def stubborn():
    failed = False
    async for attempt in stamina.retry_context(on=KeyError, wait_initial=0, wait_jitter=0):
        with attempt:
            if not failed:
                failed = True
                raise KeyError("own")


@step(retries=Retry(attempts=2, on=LookupError, wait_initial=0.001, wait_jitter=0))
async def careful():
    await stubborn()
    fail_first("step")


async def main():
    await job.options(execution_id="the-run")(3)
    failures["step"] = 1
    await careful()
    await stubborn()


asyncio.run(main())
"""
        program = PROGRAM[: PROGRAM.index('if __name__ == "__main__":')] + own_retries
        ran = run(tmp_path, EVERY_FIELD, source=program)
        assert ran.returncode == 0, ran.stderr
        lines = json_lines(ran.stderr)
        stamina_lines = [line for line in lines if line["name"] == "stamina"]
        # careful's body twice (its first attempt fails after stubborn), then top level.
        assert [line["message"] for line in stamina_lines] == ["stamina.retry_scheduled"] * 3
        ours = [line["event"] for line in lines if line["name"] == "resumable"]
        assert ours.count("step retried") == 3  # two in the job, one of careful
