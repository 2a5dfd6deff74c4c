"""A real ``ingest serve`` process for tests: start it on a free local port, wait, stop it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

# Bounds for waiting on the process (the loops stop by themselves).
READY_SECONDS = 30.0
POLL_SECONDS = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"server not ready after {READY_SECONDS} s:\n{self.output()}")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, seconds: float) -> int:
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"server still running {seconds} s after SIGTERM") from exc

    def kill(self) -> None:
        """Clean-up: only this process (and its group), whatever state it is in."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_server(argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> Server:
    port = int(env["PORT"])
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    return Server(process, port, log)


def start_ingest_serve(env: Mapping[str, str], cwd: Path, log: Path) -> Server:
    """This environment's ``ingest serve`` with ``env`` on a free port, ready; stopped if not."""
    ingest = str(Path(sys.executable).parent / "ingest")
    server = start_server([ingest, "serve"], {**env, "PORT": str(free_port())}, cwd, log)
    try:
        server.wait_ready()
    except BaseException:
        server.kill()
        raise
    return server
