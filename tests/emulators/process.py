"""Emulator processes: the handle, spawning, readiness waits, stopping, tiny HTTP helper."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

# No proxies, whatever the environment says: everything here is on 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_running: dict[int, subprocess.Popen[bytes]] = {}


class EmulatorError(RuntimeError):
    """An emulator failed to start (or to answer); the message has its log tail and a hint."""


class PortClashError(EmulatorError):
    """The emulator could not bind the port it was given (another process took it)."""


@dataclass(frozen=True)
class Emulator:
    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path | None = None
    """fake-gcs-server: its filesystem root (bucket/object layout); BigQuery: its data dir."""
    grpc_port: int | None = None
    """BigQuery: the gRPC port of the Storage Read/Write API."""
    startup_seconds: float = 0.0

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client_env(self) -> dict[str, str]:
        """The environment variable(s) Google's client libraries read to use this emulator."""
        return {
            "firestore": {"FIRESTORE_EMULATOR_HOST": self.endpoint},
            "pubsub": {"PUBSUB_EMULATOR_HOST": self.endpoint},
            "gcs": {"STORAGE_EMULATOR_HOST": self.url},
        }.get(self.name, {})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 16384))
            text = log.read().decode("utf-8", "replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    timeout: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """One HTTP request; returns (status, body) for any status, raises OSError if unreachable.

    ``body`` may be bytes (sent as is) or anything JSON-serialisable.
    """
    data: bytes | None
    all_headers = dict(headers or {})
    if body is None or isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
        all_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with _opener.open(request, timeout=timeout) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def http_ok(method: str, url: str, body: Any = None, *, ok: Sequence[int] = (200,)) -> bytes:
    """One HTTP request that must answer one of the ``ok`` statuses; returns the body."""
    status, raw = http(method, url, body)
    if status not in ok:
        raise EmulatorError(f"{method} {url} answered {status}: {raw[:500]!r}")
    return raw


def http_json(method: str, url: str, body: Any = None, *, ok: Sequence[int] = (200,)) -> Any:
    """Like http_ok, but returns the body decoded from JSON (None when empty)."""
    raw = http_ok(method, url, body, ok=ok)
    return json.loads(raw) if raw.strip() else None


def spawn(
    name: str,
    command: Sequence[str | Path],
    *,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own session (so stop() can signal the whole group)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        log.write(f"# {name}: {' '.join(map(str, command))}\n".encode())
        log.flush()
        process = subprocess.Popen(
            [str(part) for part in command],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(os.environ if env is None else env),
            start_new_session=True,
        )
    _running[process.pid] = process
    return process


def wait_ready(
    name: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    ready: Callable[[], bool],
    *,
    hint: str,
    timeout: float = START_TIMEOUT,
    clash_markers: Sequence[str] = ("Address already in use", "address already in use"),
) -> None:
    """Poll ``ready()`` until it is true; on death, port clash or timeout stop and raise."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        code = process.poll()
        if code is not None:
            _running.pop(process.pid, None)
            if any(marker in log_tail(log_path) for marker in clash_markers):
                raise PortClashError(f"{name}: port clash\n{log_tail(log_path)}")
            reason = f"exited with code {code} before it was ready"
            break
        if any(marker in log_tail(log_path, 400) for marker in clash_markers):
            terminate(process)
            raise PortClashError(f"{name}: port clash\n{log_tail(log_path)}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            terminate(process)
            reason = f"was not ready after {timeout:.0f} s (stopped it)"
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    raise EmulatorError(
        f"{name} emulator {reason}.\n"
        f"--- last lines of {log_path} ---\n{log_tail(log_path)}\n---\n"
        f"If a piece is missing: {hint}"
    )


def start_with_retries(start: Callable[[int], Emulator], *, attempts: int = 3) -> Emulator:
    """Call ``start(port)`` with a fresh free port, again if the port was taken meanwhile."""
    for attempt in range(attempts):
        try:
            return start(free_port())
        except PortClashError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def terminate(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group, wait up to ``timeout``, then SIGKILL it."""
    _running.pop(process.pid, None)
    if process.returncode is not None:  # already reaped: its pid may belong to someone else
        return
    pgid = process.pid  # start_new_session=True: the child leads its own group
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    if process.returncode is None:
        process.wait(timeout=5.0)


def stop(emu: Emulator) -> None:
    """Stop an emulator: SIGTERM its whole process group, wait (bounded), then SIGKILL."""
    terminate(emu.process)


@atexit.register
def _stop_leftovers() -> None:
    for process in list(_running.values()):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            terminate(process, timeout=3.0)
