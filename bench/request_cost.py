"""Instructions per ``POST /``: the service's app against a bare Quart app, counted by callgrind.

Throughput on these machines swings by a third between runs; instruction counts do not. Each
app is driven in-process over ASGI (no socket, no Hypercorn) with bench/intake.py's event (an
object matching no pipeline), under ``valgrind --tool=callgrind``, once with FEW and once with
MANY requests after a warm-up; the difference over MANY - FEW is the cost of one request, start-up
excluded. Hypercorn and the socket add about the same to both (about 1.1 M instructions per
request for the bare app, measured end to end the same way).

    .venv/bin/python bench/request_cost.py          # about 3 minutes; needs valgrind

The last line is ``instructions_per_request bare=A service=B ratio=A/B``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.intake import bench_settings, event  # noqa: E402

FEW, MANY, WARMUP = 100, 600, 200
COLLECTED = re.compile(r"Collected : (\d+)")


def bare_app() -> Any:
    from quart import Quart, request

    app = Quart("bare")

    @app.post("/")
    async def receive() -> tuple[dict[str, str], int]:
        await request.get_data()
        return {"status": "ignored"}, 200

    return app


def service_app() -> Any:
    from service.app import create_app

    app = create_app(bench_settings(Path(tempfile.mkdtemp(prefix="request-cost-"))))
    # The log line is formatted and written as in production, into /dev/null.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    return app


async def drive(app: Any, requests: int) -> None:
    recorded = event("elsewhere")
    headers = [(k.lower().encode(), v.encode()) for k, v in recorded.headers.items()]
    headers += [(b"content-length", str(len(recorded.body)).encode()), (b"host", b"bench")]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "extensions": {},
    }
    statuses: list[int] = []

    async def one() -> None:
        messages = [{"type": "http.request", "body": recorded.body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # no disconnect: the app stops listening when done
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(dict(scope), receive, send)

    await app.startup()
    for _ in range(WARMUP + requests):
        await one()
    await app.shutdown()
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {sorted(set(statuses))}")


def count(which: str, requests: int) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    argv += [sys.executable, __file__, "drive", which, str(requests)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=True)
    found = COLLECTED.findall(done.stderr)
    if not found:
        raise SystemExit(f"callgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found[-1])


def per_request(which: str) -> float:
    with ThreadPoolExecutor(2) as pool:
        few, many = pool.map(lambda n: count(which, n), (FEW, MANY))
    return (many - few) / (MANY - FEW)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role[:1] == ["drive"]:
        which, requests = args.role[1], int(args.role[2])
        app = bare_app() if which == "bare" else service_app()
        asyncio.run(drive(app, requests))
        sys.stdout.flush()
        os._exit(0)  # skip interpreter teardown: its instructions are not a request's
    figures = {}
    for which in ("bare", "service"):
        figures[which] = per_request(which)
        print(f"{which}: {figures[which] / 1e6:.3f} M instructions per request", flush=True)
    bare, service = figures["bare"], figures["service"]
    print(
        f"instructions_per_request bare={bare:.0f} service={service:.0f} ratio={bare / service:.2f}"
    )


if __name__ == "__main__":
    main()
