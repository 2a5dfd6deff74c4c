"""Run the app under Hypercorn with the project's configuration file, and shut down gracefully.

On SIGTERM (Cloud Run's notice) or SIGINT: the app stops taking events at once (503, so the
platform redelivers them elsewhere), Hypercorn stops accepting connections and waits up to
``graceful_timeout`` for the requests in flight, then the app's ``after_serving`` gives up the
units still running and releases their leases (see ``Runtime.close``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart

from service.app import create_app
from service.errors import ConfigError
from service.runtime import Runtime
from service.settings import Settings

log = logging.getLogger(__name__)

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
    config = Config.from_toml(path) if path is not None else Config()
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


def run(settings: Settings, host: str, port: int, config_file: Path | None = None) -> None:
    path = find_config(config_file)
    config = hypercorn_config(host, port, path)
    app = create_app(settings)
    log.info(
        "hypercorn configuration %s: graceful_timeout %ss, keep_alive_timeout %ss",
        path or "(Hypercorn's defaults)",
        config.graceful_timeout,
        config.keep_alive_timeout,
    )
    asyncio.run(serve_until_signalled(app, config))


async def serve_until_signalled(app: Quart, config: Config) -> None:
    runtime: Runtime = app.extensions["runtime"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if not stop.is_set():
            log.info("%s received: refusing new events, finishing those in flight", signum.name)
        runtime.drain()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    await serve(app, config, shutdown_trigger=stop.wait)
    log.info("stopped")
