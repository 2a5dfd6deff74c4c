"""How fast ``POST /`` answers, against a bare Quart app and against the classic threaded design.

In one run, on loopback, each server in its own process with one worker, the load from another
process (keep-alive HTTP/1.1 connections, each sending its next request when the last answer
came), server and load pinned to different cores when there are two:

1. no I/O: an Eventarc storage CloudEvent for an object that matches no pipeline, to the
   service (the real app and ``hypercorn.toml``, embedded backends) and to a bare Quart app on
   Hypercorn that reads the body and answers a fixed JSON object;
2. I/O: the redelivery of an object that was already loaded (the ledger answers "duplicate":
   one create, one get), every backend call delayed 50 ms; to the service, and to the same
   handler (same decoder, same Ingestor and ledger code, same answer and log line) as a Flask
   app on gunicorn gthread with 8 threads, where each backend call blocks its thread as a
   synchronous client library's would.

    .venv/bin/python bench/intake.py [--seconds 5] [--repeat 2] [--delay-ms 50]
        [--units-in-flight N] [--only-io] [--settle 3]

Targets run in rounds (every target once per round, a fresh server each time, the order flipped
every round, the same pause before each run) and the best run of each counts. The service runs
with its default settings unless ``--units-in-flight`` sets INGEST_MAX_UNITS_IN_FLIGHT: the
Ingestor holds one of those slots while it claims a unit, so the I/O case (two 50 ms ledger
calls per request) is capped at slots / 0.1 s requests per second.
The last line is ``ratio_vs_bare_quart=X ratio_vs_flask_io=Y`` (throughput of the service over
the other's).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.adapters.local.directory_store import DirectoryObjectStore  # noqa: E402
from service.adapters.memory import MemoryLedgerStore  # noqa: E402
from service.content import fingerprint  # noqa: E402
from service.events import decode  # noqa: E402
from service.ledger import Claimed, Ledger  # noqa: E402
from service.models import LedgerRecord, ObjectFinalized, Stored, UnitKey, UnitResult  # noqa: E402
from service.recording import RecordedRequest  # noqa: E402
from service.samples import object_resource, storage_cloudevent  # noqa: E402
from service.settings import Settings, replace_settings  # noqa: E402

T = TypeVar("T")
HOST = "127.0.0.1"
BUCKET = "bench-landing"
PIPELINES = f"""
[[pipelines]]
name = "bench"
bucket = "{BUCKET}"
prefix = "in/"
table = "bench.rows"
schema = [{{ name = "id", type = "INTEGER" }}]
"""
# Bounds: how long a server may take to listen, and to stop after SIGTERM.
START_SECONDS = 30.0
STOP_SECONDS = 10.0
# Requests before this are not counted (connections opening, caches warming).
WARMUP_SECONDS = 1.0


def event(bucket: str) -> RecordedRequest:
    """Eventarc's CloudEvent for a 313-byte CSV object (generation 1)."""
    resource = object_resource(bucket, "in/2026-11-21.csv", 1, b"x" * 313)
    return storage_cloudevent(resource, event_id="9429367541231823")


# ---- the servers ------------------------------------------------------------------------------


class DelayedLedgerStore:
    """Every call waits ``delay`` first: asynchronously, or blocking its thread (``blocking``)."""

    def __init__(self, inner: MemoryLedgerStore, delay: float, *, blocking: bool) -> None:
        self.inner = inner
        self.delay = delay
        self.blocking = blocking

    async def _wait(self) -> None:
        if self.blocking:
            time.sleep(self.delay)  # noqa: ASYNC251 - a synchronous client library holds the thread
        else:
            await asyncio.sleep(self.delay)

    async def _call(self, work: Callable[[], Awaitable[T]]) -> T:
        await self._wait()
        return await work()

    async def get(self, key: str) -> Stored | None:
        return await self._call(lambda: self.inner.get(key))

    async def create(self, record: LedgerRecord) -> str | None:
        return await self._call(lambda: self.inner.create(record))

    async def replace(self, record: LedgerRecord, expected_version: str) -> str | None:
        return await self._call(lambda: self.inner.replace(record, expected_version))

    async def list(self, *args: Any, **kwargs: Any) -> list[Stored]:
        return await self._call(lambda: self.inner.list(*args, **kwargs))

    async def ping(self) -> None:
        await self._call(self.inner.ping)

    async def close(self) -> None:
        await self.inner.close()


async def loaded_ledger() -> MemoryLedgerStore:
    """A ledger in which the bench object was already loaded (COMPLETED)."""
    store = MemoryLedgerStore()
    decoded = decode(event(BUCKET).headers, event(BUCKET).body)
    assert isinstance(decoded, ObjectFinalized)
    ref = decoded.object.ref
    key = UnitKey("bench", ref.bucket, ref.name, ref.generation or 0)
    ledger = Ledger(store, owner="bench", lease_seconds=600)
    claim = await ledger.claim(key, fingerprint(decoded.object), event_id="seed")
    assert isinstance(claim, Claimed)
    await ledger.complete(claim.lease, UnitResult(rows_read=5, rows_loaded=5))
    return store


def bench_settings(data_dir: Path, units_in_flight: int | None = None) -> Settings:
    """The service's defaults, on a pipelines file of one pipeline for the bench bucket."""
    pipelines = data_dir / "pipelines.toml"
    pipelines.write_text(PIPELINES)
    settings = Settings(data_dir=data_dir, pipelines_file=pipelines, log_format="json")
    if units_in_flight is None:
        return settings
    return replace_settings(settings, max_units_in_flight=units_in_flight)


def delayed_backends(settings: Settings, delay: float, *, blocking: bool) -> Any:
    """Backends whose ledger is delayed and already holds the bench object as loaded.

    Only the ledger is called on the measured path (a duplicate is settled by the claim);
    the object store and warehouse are never touched, so the warehouse is left out.
    """
    from service.wiring import Backends

    ledger = DelayedLedgerStore(asyncio.run(loaded_ledger()), delay, blocking=blocking)
    store = DirectoryObjectStore(settings.data_dir / "buckets")
    return Backends(store, Unused(), ledger)  # type: ignore[arg-type]


class Unused:
    """Stands in for the warehouse, which the measured requests never reach."""

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


def serve_service(port: int, data_dir: Path, delay: float | None, units: int | None) -> None:
    """The service as ``ingest serve`` runs it; with ``delay``, on the delayed ledger."""
    from service.serve import run

    settings = bench_settings(data_dir, units)
    if delay is None:
        run(settings, HOST, port)
        return
    backends = delayed_backends(settings, delay, blocking=False)
    with mock.patch("service.runtime.build_backends", return_value=backends):
        run(settings, HOST, port)


def serve_bare(port: int) -> None:
    """The floor: Quart on Hypercorn (same configuration file) that reads and answers."""
    from hypercorn.asyncio import serve
    from quart import Quart, request

    from service.serve import find_config, hypercorn_config

    app = Quart("bare")

    @app.post("/")
    async def receive() -> tuple[dict[str, str], int]:
        await request.get_data()
        return {"status": "ignored"}, 200

    asyncio.run(serve(app, hypercorn_config(HOST, port, find_config())))


def flask_app(data_dir: str, delay: float, units: int | None = None) -> Any:
    """The same handler on Flask, for gunicorn's gthread worker (one event loop per thread)."""
    from flask import Flask, jsonify, request

    from service import answers
    from service.errors import EnvelopeError, UnsupportedMediaError
    from service.ingest import Ingestor
    from service.logs import configure_logging
    from service.wiring import build_ingestor, load_config

    settings = bench_settings(Path(data_dir), units)
    configure_logging(settings)
    pipelines = load_config(settings)
    log = logging.getLogger("service.routes.events")
    local = threading.local()
    app = Flask("flask-io")

    def thread_ingestor() -> tuple[asyncio.Runner, Ingestor]:
        if not hasattr(local, "runner"):
            backends = delayed_backends(settings, delay, blocking=True)
            local.runner = asyncio.Runner()
            local.ingestor = build_ingestor(settings, backends, pipelines)
        return local.runner, local.ingestor

    @app.post("/")
    def receive() -> Any:
        started = time.perf_counter()
        body = request.get_data(cache=False)
        try:
            decoded = decode(dict(request.headers), body)
        except EnvelopeError as exc:
            refused = answers.bad_request(str(exc))
            return jsonify(refused.body), refused.http_status
        except UnsupportedMediaError as exc:
            refused = answers.unsupported_media(str(exc))
            return jsonify(refused.body), refused.http_status
        runner, ingestor = thread_ingestor()
        outcome = runner.run(ingestor.handle(decoded))
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info(
            "event %s (%s, %s): %s in %s ms",
            decoded.meta.event_id,
            decoded.meta.shape,
            decoded.meta.event_type,
            outcome.status.value,
            elapsed_ms,
            extra={"event_id": decoded.meta.event_id, "outcome": outcome.status.value},
        )
        answer = answers.of_outcome(outcome)
        return jsonify(answer.body), answer.http_status

    return app


# ---- the load ---------------------------------------------------------------------------------


def raw_request(request: RecordedRequest) -> bytes:
    head = ["POST / HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(request.body)}"]
    head += [f"{k}: {v}" for k, v in request.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body


@dataclass
class Tally:
    """What the connections saw between ``start`` (after the warm-up) and ``stop``."""

    start: float
    stop: float
    latencies: list[float] = field(default_factory=list)
    codes: dict[int, int] = field(default_factory=dict)


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bool]:
    """One request on a kept-alive connection: the status, and whether the server closes."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers.get("connection", "").lower() == "close"


async def connection(port: int, raw: bytes, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while (began := time.perf_counter()) < tally.stop:
            status, closing = await exchange(reader, writer, raw)
            if began >= tally.start:
                tally.latencies.append(time.perf_counter() - began)
                tally.codes[status] = tally.codes.get(status, 0) + 1
            if closing:
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
    finally:
        writer.close()


async def load(port: int, raw: bytes, connections: int, seconds: float) -> dict[str, Any]:
    start = time.perf_counter() + WARMUP_SECONDS
    tally = Tally(start, start + seconds)
    await asyncio.gather(*(connection(port, raw, tally) for _ in range(connections)))
    latencies = sorted(tally.latencies)
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "codes": tally.codes,
    }


# ---- the orchestration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    argv: list[str]
    port: int
    request: RecordedRequest
    connections: int


@dataclass(frozen=True)
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    codes: dict[str, int]

    def line(self) -> str:
        return (
            f"{self.name}: {self.rps:.0f} req/s, p50 {self.p50_ms:.1f} ms,"
            f" p99 {self.p99_ms:.1f} ms, statuses {self.codes}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def pin(pid: int, core: int) -> None:
    """Server on core 0, load on core 1: neither takes the other's core (when there are two)."""
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(pid, {core})


@contextlib.contextmanager
def serving(target: Target, log: Path) -> Iterator[None]:
    """The server in its own session (its workers stop with it); bounded start and stop."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            target.argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        pin(process.pid, 0)
        deadline = time.monotonic() + START_SECONDS
        while not listening(target.port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{target.name} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_SECONDS)


def listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def measure(target: Target, args: argparse.Namespace, folder: Path, attempt: int) -> Result:
    """One run against a freshly started server."""
    request_file = folder / f"{target.port}.request"
    request_file.write_bytes(raw_request(target.request))
    argv = [sys.executable, __file__, "load", "--port", str(target.port)]
    argv += ["--request", str(request_file), "--connections", str(target.connections)]
    argv += ["--seconds", str(args.seconds)]
    with serving(target, folder / f"{target.port}-{attempt}.log"):
        loader = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=args.seconds + 120,
            check=True,
            preexec_fn=lambda: pin(0, 1),
        )
    figures = json.loads(loader.stdout.strip().splitlines()[-1])
    result = Result(target.name, **figures)
    print(f"  run {attempt + 1}: {result.line()}", flush=True)
    return result


def targets(args: argparse.Namespace, folder: Path) -> dict[str, Target]:
    me = [sys.executable, __file__]
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    found: dict[str, Target] = {}
    noio, io = args.connections, args.io_connections
    port = free_port()
    bare = [*me, "bare", "--port", str(port)]
    found["bare"] = Target("bare quart, no I/O", bare, port, event("elsewhere"), noio)
    for name, delay, request, connections in (
        ("service", 0.0, event("elsewhere"), noio),
        ("service_io", args.delay_ms, event(BUCKET), io),
    ):
        port = free_port()
        data = folder / name
        data.mkdir()
        argv = [*me, "service", "--port", str(port), "--data-dir", str(data)]
        argv += ["--delay-ms", str(delay)]
        if args.units_in_flight is not None:
            argv += ["--units-in-flight", str(args.units_in_flight)]
        label = "service, I/O" if delay else "service, no I/O"
        found[name] = Target(label, argv, port, request, connections)
    port = free_port()
    data = folder / "flask"
    data.mkdir()
    factory = (
        f"bench.intake:flask_app({str(data)!r}, {args.delay_ms / 1000!r}, {args.units_in_flight!r})"
    )
    argv = [gunicorn, "--workers", "1", "--worker-class", "gthread", "--threads", "8"]
    argv += ["--bind", f"{HOST}:{port}", "--log-level", "warning", factory]
    found["flask_io"] = Target("flask gthread x8, I/O", argv, port, event(BUCKET), io)
    return found


def bench(args: argparse.Namespace) -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} cores; {args.seconds:g} s per run, best of {args.repeat} rounds", flush=True)
    print(f"no I/O: {args.connections} connections; an object matching no pipeline", flush=True)
    print(
        f"I/O: {args.io_connections} connections; a duplicate delivery,"
        f" every backend call +{args.delay_ms:g} ms",
        flush=True,
    )
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        chosen = targets(args, Path(tmp))
        if args.only_io:
            chosen = {k: v for k, v in chosen.items() if k in ("service_io", "flask_io")}
        # Rounds of every target in turn, so a busy moment of the machine hits all of them; the
        # order flips every round and each run starts after the same pause, because a run that
        # follows an idle one (the Flask run barely uses the CPU) gets a faster CPU on these VMs.
        for attempt in range(args.repeat):
            order = list(chosen.items())
            for key, target in order[::-1] if attempt % 2 else order:
                time.sleep(args.settle)
                result = measure(target, args, Path(tmp), attempt)
                if key not in results or result.rps > results[key].rps:
                    results[key] = result
    print("best runs:")
    for result in results.values():
        print(result.line())
        if set(result.codes) != {"200"}:
            print(f"warning: {result.name} did not always answer 200")
    y = results["service_io"].rps / results["flask_io"].rps
    if args.only_io:
        print(f"ratio_vs_flask_io={y:.2f}")
        return
    x = results["service"].rps / results["bare"].rps
    print(f"ratio_vs_bare_quart={x:.2f} ratio_vs_flask_io={y:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    roles = ["bench", "service", "bare", "load"]
    parser.add_argument("role", nargs="?", default="bench", choices=roles)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per target (best counts)")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="delay of each backend call")
    parser.add_argument("--connections", type=int, default=32, help="load connections (no I/O)")
    parser.add_argument("--io-connections", type=int, default=64, help="load connections (I/O)")
    parser.add_argument(
        "--units-in-flight", type=int, help="INGEST_MAX_UNITS_IN_FLIGHT (default: the service's)"
    )
    parser.add_argument("--only-io", action="store_true", help="measure the I/O pair only")
    parser.add_argument("--settle", type=float, default=3.0, help="pause before each run (s)")
    parser.add_argument("--port", type=int, help="(servers and load) the port")
    parser.add_argument("--data-dir", type=Path, help="(service) its data folder")
    parser.add_argument("--request", type=Path, help="(load) the raw request to send")
    args = parser.parse_args()
    if args.role == "service":
        delay = args.delay_ms / 1000 if args.delay_ms > 0 else None
        serve_service(args.port, args.data_dir, delay, args.units_in_flight)
    elif args.role == "bare":
        serve_bare(args.port)
    elif args.role == "load":
        raw = args.request.read_bytes()
        print(json.dumps(asyncio.run(load(args.port, raw, args.connections, args.seconds))))
    else:
        bench(args)


if __name__ == "__main__":
    main()
