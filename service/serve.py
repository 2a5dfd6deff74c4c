"""Run the app under Hypercorn with the project's configuration file."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from hypercorn.asyncio import serve
from hypercorn.config import Config

from service.app import create_app
from service.settings import Settings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "hypercorn.toml"


def hypercorn_config(host: str, port: int, config_file: Path | None = None) -> Config:
    path = config_file or DEFAULT_CONFIG
    config = Config.from_toml(path) if path.exists() else Config()
    config.bind = [f"{host}:{port}"]
    return config


def run(settings: Settings, host: str, port: int, config_file: Path | None = None) -> None:
    config = hypercorn_config(host, port, config_file)
    app = create_app(settings)
    asyncio.run(_serve(app, config))


async def _serve(app: object, config: Config) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
