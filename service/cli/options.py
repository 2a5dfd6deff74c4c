"""Options several commands share, each spelled once: where replayed events go and how, what a
bounded number or a day is, and the output flags every command has in its own words.

An option whose default is a setting (``--to``, ``--concurrency``, ``--retries``, ``--host``,
``--port``) defaults to None here: the command lays the flags given over the settings
(``load_settings(**flags)``), so the environment is read in one place, service/settings.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from service.settings import REPLAY_CONCURRENCY

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

# A calendar day as the flags take it (--date, backfill's --from and --to).
DAY = click.DateTime(formats=["%Y-%m-%d"])

# Where replay and dead-letter re-drive send events, and how.
to_url_option = click.option(
    "--to",
    "url",
    metavar="URL",
    help="POST each event to the service at this URL (default: INGEST_REPLAY_URL).",
)
in_process_option = click.option(
    "--in-process", is_flag=True, help="Run the events here, with no server."
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Seconds to wait for each answer with --to.",
)
concurrency_option = click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(*REPLAY_CONCURRENCY),
    help="Events in flight at once (default: INGEST_REPLAY_CONCURRENCY, else 4).",
)


def _headers(ctx: click.Context, param: click.Parameter, raw: tuple[str, ...]) -> dict[str, str]:
    """--header 'NAME: VALUE' values as a dict."""
    headers: dict[str, str] = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not 'NAME: VALUE'", param_hint="--header")
        headers[name.strip()] = value.strip()
    return headers


headers_option = click.option(
    "--header",
    "-H",
    "headers",
    multiple=True,
    callback=_headers,
    metavar="'NAME: VALUE'",
    help="Add a header to every request with --to, e.g. "
    '-H "Authorization: Bearer $(gcloud auth print-identity-token)".',
)


def delivery_options(command: F) -> F:
    """--to, --in-process, --concurrency, --header and --timeout: where replayed or re-driven
    events go, and how (destination_url in common.py picks the one destination)."""
    for option in (timeout_option, headers_option, concurrency_option, in_process_option):
        command = option(command)
    return to_url_option(command)


date_option = click.option(
    "--date",
    type=DAY,
    help="The logical date (YYYY-MM-DD) for pipelines whose prefix holds {date}.",
)


def bounded(*decls: str, low: int, high: int, default: int, help: str) -> Decorator[Any]:
    """A whole-number option from ``low`` to ``high``, its default shown in --help."""
    return click.option(
        *decls, type=click.IntRange(low, high), default=default, show_default=True, help=help
    )


def json_option(help: str) -> Decorator[Any]:
    return click.option("--json", "as_json", is_flag=True, help=help)


def dry_run_option(help: str) -> Decorator[Any]:
    return click.option("--dry-run", is_flag=True, help=help)


def shape_option(shapes: Mapping[str, str], default: str) -> Decorator[Any]:
    """--shape: one of ``shapes`` (name: what sends it), each explained in --help."""
    return click.option(
        "--shape",
        type=click.Choice(list(shapes)),
        default=default,
        show_default=True,
        help="; ".join(f"{name}: {what}" for name, what in shapes.items()) + ".",
    )
