"""`resumable show ID --follow` in a real terminal (a pseudo-terminal from
the stdlib `pty` module), watching jobs that run in other processes."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from support.clirun import cli_env, kill, paused, start_cli, start_job, wait_for_loop
from support.crashing import TESTS

from resumable._cli.exitcodes import ExitCode
from resumable.stores import SQLiteStore

COLUMNS = 110
# rich's Live: back to the start of the line, then up one line per line
# drawn before, erasing each (rich.live_render.LiveRender.position_cursor).
UP = "\x1b[1A\x1b[2K"
REDRAW = re.compile(r"\r\x1b\[2K((?:\x1b\[1A\x1b\[2K)*)")
ANSI = re.compile(r"\x1b\[\??[0-9;]*[A-Za-z]")


class Terminal:
    """A command running on a pseudo-terminal of COLUMNS columns."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, COLUMNS, 0, 0))
        # Ctrl-C must reach the command, as in a real terminal. A test run
        # started in the background without job control (`nohup make test &`,
        # some CI runners) ignores SIGINT, and an ignored signal stays ignored
        # in children; a handled one is reset to the default by exec.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "resumable", *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=cli_env(),
                cwd=TESTS,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        os.close(slave)
        self._master = master
        self.output = ""

    def _read(self, timeout: float) -> bool:
        """Read what is there; False once the command has closed the terminal."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: every writer is gone
            return False
        self.output += data.decode("utf-8", errors="replace")
        return bool(data)

    def read_until(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"{text!r} never appeared in {self.output!r}"
            if not self._read(0.1):
                raise AssertionError(f"exited before {text!r}: {self.output!r}")

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self._read(0.1):
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"--follow did not exit: {self.output[-2000:]!r}")
        os.close(self._master)
        return self.process.wait(timeout=10)

    def frames(self) -> list[str]:
        """Each frame drawn, with the redraw and cursor codes removed."""
        parts = REDRAW.split(self.output)
        texts = parts[0::2]  # split() interleaves the captured line counts
        return [ANSI.sub("", text).replace("\r", "") for text in texts if text.strip()]


def counts(frames: list[str], kind: str) -> list[tuple[int, int]]:
    """(done, total) of the first `kind` line of each frame that has one."""
    found = []
    for frame in frames:
        match = re.search(rf"^\s+{kind}\s+#\d+\s.*?\s(\d+)/(\d+)\s", frame, re.M)
        if match:
            found.append((int(match[1]), int(match[2])))
    return found


@pytest.fixture(name="url")
async def _url(tmp_path):
    store = SQLiteStore(tmp_path / "state.db")  # creates the file the command opens
    yield store.url
    await store.close()


class TestFollow:
    """The bars advance as another process works, and --follow exits when it ends."""

    def test_bars_advance_until_the_job_ends(self, url):
        job = start_job(url, "live", 40, 0.06)
        try:
            wait_for_loop(url, "live", 1)
            with paused(job):  # until the first frame: see clirun.paused
                terminal = Terminal("--store", url, "show", "live", "--follow", "--interval", "0.1")
                terminal.read_until("loop")
            assert terminal.wait() == ExitCode.OK, terminal.output
        finally:
            job.communicate(timeout=60)
        assert job.returncode == 0
        frames = terminal.frames()
        loop = counts(frames, "loop")
        assert loop[0][0] < 40 and loop[-1] == (40, 40)
        assert [done for done, _ in loop] == sorted(done for done, _ in loop)
        assert len({done for done, _ in loop}) >= 4, loop  # seen moving, not just start and end
        amap = counts(frames, "amap")
        assert amap[-1] == (40, 40)
        assert any(0 < done < 40 for done, _ in amap), amap
        assert re.search(r"^completed in \d", frames[-1], re.M)
        assert re.search(r"running\s+.* pid \d+\s+ran ", frames[0])
        # Redrawn in place: the cursor goes back up over the previous frame
        # (a head line and at least one bar: up one line or more).
        redraws = [len(ups) // len(UP) for ups in REDRAW.findall(terminal.output)]
        assert len(redraws) == len(frames) - 1 and all(n >= 1 for n in redraws)
        assert terminal.output.startswith("\x1b[?25l") and terminal.output.endswith("\x1b[?25h")
        assert all(len(line) < COLUMNS for f in frames for line in f.splitlines())

    def test_failed_job_exits_1(self, url):
        job = start_job(url, "boom", 10, 0.05, "fail")
        try:
            wait_for_loop(url, "boom", 1)
            terminal = Terminal("--store", url, "show", "boom", "--follow", "--interval", "0.1")
            assert terminal.wait() == ExitCode.EXECUTION_FAILED
        finally:
            job.communicate(timeout=60)
        last = terminal.frames()[-1]
        assert re.search(
            r"^failed after .*: RuntimeError: asked to fail after 10 items$", last, re.M
        )

    def test_follows_an_orphan_through_its_resume(self, url):
        """From 'owner gone' to completed, across attempts and processes."""
        job = start_job(url, "orphan", 30, 0.03)
        wait_for_loop(url, "orphan", 3)
        kill(job)
        terminal = Terminal("--store", url, "show", "orphan", "--follow", "--interval", "0.1")
        terminal.read_until("its owner is gone")
        resumer = subprocess.Popen(
            [sys.executable, "-m", "resumable", "--store", url, "resume", "orphan"],
            env=cli_env(),
            cwd=TESTS,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert terminal.wait() == ExitCode.OK
        resumer.communicate(timeout=60)
        assert resumer.returncode == 0
        last = terminal.frames()[-1]
        assert "completed  attempt 2" in last and counts([last], "loop") == [(30, 30)]

    async def test_an_ended_execution_is_drawn_once(self, url):
        from jobs import carry

        store = SQLiteStore(url.removeprefix("sqlite:///"))
        await carry.numbers.options(execution_id="ended", store=store)(3)
        await store.close()
        terminal = Terminal("--store", url, "show", "ended", "--follow")
        assert terminal.wait(timeout=20) == ExitCode.OK
        [frame] = terminal.frames()
        assert counts([frame], "loop") == [(3, 3)] and "completed in" in frame

    def test_ctrl_c_stops_following(self, url):
        job = start_job(url, "long", 2000, 0.02)
        try:
            wait_for_loop(url, "long", 1)
            terminal = Terminal("--store", url, "show", "long", "--follow", "--interval", "0.1")
            terminal.read_until("loop")
            terminal.process.send_signal(signal.SIGINT)
            assert terminal.wait() == ExitCode.INTERRUPTED
            assert terminal.output.endswith("\x1b[?25h")  # the cursor is back
            assert "Traceback" not in terminal.output
        finally:
            kill(job)

    def test_unknown_id(self, url):
        terminal = Terminal("--store", url, "show", "nope", "--follow")
        assert terminal.wait() == ExitCode.NOT_FOUND
        assert "no execution 'nope'" in terminal.output


def test_follow_into_a_pipe(url):
    """Not a terminal: a timestamped frame per change, no control codes."""
    job = start_job(url, "piped", 15, 0.04)
    try:
        wait_for_loop(url, "piped", 1)
        with paused(job):  # until the first frame: see clirun.paused
            follower = start_cli("show", "piped", "--follow", "--interval", "0.1", store=url)
            first = follower.stdout.readline()
        rest, err = follower.communicate(timeout=60)
    finally:
        job.communicate(timeout=60)
    stdout = first + rest
    assert follower.returncode == 0, err
    assert "\x1b" not in stdout
    stamps = re.findall(r"^\[\d\d:\d\d:\d\d\] watched  piped  ", stdout, re.M)
    assert len(stamps) >= 3
    assert re.search(r"^completed in ", stdout, re.M)


def test_follow_as_json_lines(url):
    """--follow --json: one `show --json` object per line, per change."""
    job = start_job(url, "jsonl", 15, 0.04)
    try:
        wait_for_loop(url, "jsonl", 1)
        with paused(job):  # until the first object: see clirun.paused
            follower = start_cli(
                "show", "jsonl", "--follow", "--json", "--interval", "0.1", store=url
            )
            first = follower.stdout.readline()
        rest, err = follower.communicate(timeout=60)
    finally:
        job.communicate(timeout=60)
    assert follower.returncode == 0, err
    objects = [json.loads(line) for line in (first + rest).splitlines()]
    assert len(objects) >= 3
    done = [o["loops"][0]["done"] for o in objects]
    assert done == sorted(done) and done[0] < 15
    assert objects[-1]["status"] == "completed"
    assert objects[-1]["fanouts"][0]["done"] == 15
