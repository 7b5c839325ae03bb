"""Fixtures: unstick's real servers, started from the binary cargo built, on free loopback ports."""

from __future__ import annotations

import os
import selectors
import subprocess
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
#: How long a server may take to print its address.
START_SECONDS = 20


def unstick_binary() -> Path:
    """The `unstick` binary: $UNSTICK_BIN (which must exist), else cargo's debug build."""
    named = os.environ.get("UNSTICK_BIN")
    if named:
        path = Path(named)
        if not path.is_file():
            pytest.fail(f"UNSTICK_BIN={named} does not exist")
        return path
    path = REPO / "target" / "debug" / "unstick"
    if not path.is_file():
        pytest.skip(f"{path} is missing: build it with `cargo build` (or set UNSTICK_BIN)")
    return path


class Server:
    """A running `unstick ... serve`, stopped (SIGTERM, then SIGKILL) when the test ends."""

    def __init__(self, args: List[str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [str(unstick_binary()), *args, "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log.open("wb"),
        )
        self.address = self._read_address()

    def _read_address(self) -> Tuple[str, int]:
        # The server prints the address it listens on as its first line.
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=START_SECONDS):
                self.stop()
                pytest.fail(f"no address from the server in {START_SECONDS} s: {self.log_text()}")
        line = self.process.stdout.readline().decode().strip()
        host, _, port = line.rpartition(":")
        if not port.isdigit():
            self.stop()
            pytest.fail(f"the server printed {line!r}, not an address: {self.log_text()}")
        return host, int(port)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """serve(*args) starts `unstick ARGS --listen 127.0.0.1:0` and returns the Server."""
    servers: List[Server] = []

    def start(*args: str) -> Server:
        server = Server(list(args), tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
