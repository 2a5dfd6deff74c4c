"""Run the app under Hypercorn with the project's configuration file, and shut down gracefully.

On SIGTERM (Cloud Run's notice) or SIGINT: the app stops taking events at once (503, so the
platform redelivers them elsewhere) and Hypercorn stops accepting connections and waits up to
``graceful_timeout`` for the requests in flight. A second before that wait ends, the units still
running are given up: each releases its ledger lease and its request is answered 503
(``Runtime.give_up_after``). Then ``after_serving`` closes the clients and the process exits.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart

from service.app import create_app
from service.errors import ConfigError
from service.runtime import Runtime
from service.settings import Settings
from service.typed_reader import load_toml

log = logging.getLogger(__name__)

# Of Hypercorn's grace time, what is kept back to give up the units still running, release their
# leases and answer their requests with 503 before Hypercorn stops waiting for them.
ANSWER_MARGIN_SECONDS = 1.0
# After serving ends, how long worker threads (blocking stage work) get to finish, in all.
THREAD_JOIN_SECONDS = 1.0
# Past the grace time, how long the rest of shutdown may take before the process leaves anyway:
# giving up units, closing clients and joining threads are each bounded, but their sum (1.5 + 1
# + 1 s) must not carry the exit past Cloud Run's SIGKILL, 10 s after SIGTERM.
SHUTDOWN_MARGIN_SECONDS = 2.5

CONFIG_NAME = "hypercorn.toml"
# Where the configuration file is looked for: the working directory (the container's WORKDIR),
# then the source checkout this module runs from.
CONFIG_SEARCH = (Path(CONFIG_NAME), Path(__file__).resolve().parent.parent / CONFIG_NAME)


def find_config(config_file: Path | None = None) -> Path | None:
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"{config_file}: no such Hypercorn configuration file")
        return config_file
    return next((path for path in CONFIG_SEARCH if path.is_file()), None)


def hypercorn_config(host: str, port: int, path: Path | None) -> Config:
    config = Config()
    if path is not None:  # read here, not by Hypercorn, so a bad file is one line naming it
        config = Config.from_mapping(load_toml(path, "Hypercorn configuration file").raw)
    if config.workers != 1:
        raise ConfigError(
            f"{path}: workers = {config.workers}; the service runs one worker per instance"
            " (scale with Cloud Run instances and INGEST_MAX_UNITS_IN_FLIGHT)"
        )
    config.bind = [f"{host}:{port}"]
    # Hypercorn's lines go to the root handler (JSON on Cloud Run), not a handler of its own.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = None
    return config


def check_port(host: str, port: int) -> None:
    """ConfigError when ``host:port`` cannot be listened on (another server holds it, say).

    Hypercorn binds only after the app has started (backends open, logs written) and then
    fails with a traceback; a trial bind first makes it one line. SO_REUSEADDR, as Hypercorn
    sets it, so a port in TIME_WAIT from a server just stopped is not taken for busy.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as trial:
            trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            trial.bind(address)
    except OSError as exc:
        busy = exc.errno == errno.EADDRINUSE
        fix = (
            "another server is listening there: stop it, or pick another port (--port N, PORT=N)"
            if busy
            else "pick another address (--host, INGEST_HOST) or port (--port N, PORT=N)"
        )
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): {fix}") from exc


def run(settings: Settings, host: str, port: int, config_file: Path | None = None) -> None:
    path = find_config(config_file)
    config = hypercorn_config(host, port, path)
    check_port(host, port)
    app = create_app(settings)
    log.info(
        "hypercorn configuration %s: graceful_timeout %ss, keep_alive_timeout %ss",
        path or "(Hypercorn's defaults)",
        config.graceful_timeout,
        config.keep_alive_timeout,
    )
    _run_loop(serve_until_signalled(app, config))
    _exit_past_stuck_threads()


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` without its unbounded wait for the worker threads at the end."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()  # shuts the default executor down without waiting for its threads


async def serve_until_signalled(app: Quart, config: Config) -> None:
    runtime: Runtime = app.extensions["runtime"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline: list[asyncio.Task[None]] = []

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            return
        log.info("%s received: refusing new events, finishing those in flight", signum.name)
        runtime.drain()
        stop.set()
        shutdown_watchdog(config.graceful_timeout + SHUTDOWN_MARGIN_SECONDS)
        grace = max(0.0, config.graceful_timeout - ANSWER_MARGIN_SECONDS)
        deadline.append(loop.create_task(runtime.give_up_after(grace)))

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await serve(app, config, shutdown_trigger=stop.wait)
    finally:
        for task in deadline:
            task.cancel()
    log.info("stopped")


def shutdown_watchdog(seconds: float, leave: Callable[[int], object] = os._exit) -> threading.Timer:
    """From the signal on, the whole shutdown gets ``seconds``; then the process leaves.

    A thread, not a task: it fires even when the event loop is blocked.
    """

    def expire() -> None:
        log.error("shutdown took over %ss; leaving now", seconds)
        logging.shutdown()
        leave(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def _exit_past_stuck_threads() -> None:
    """Leave even if a worker thread is still blocked in a stage that was given up.

    The leases are released and the clients closed by now; a thread that never returns would
    otherwise hold the process until Cloud Run kills it (the interpreter joins worker threads).
    """
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    deadline = time.monotonic() + THREAD_JOIN_SECONDS
    for thread in others:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in others if t.is_alive() and not t.daemon]
    if stuck:
        names = ", ".join(t.name for t in stuck)
        log.warning("leaving %d worker thread(s) that did not finish: %s", len(stuck), names)
        logging.shutdown()
        os._exit(0)
