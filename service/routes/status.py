"""GET /status (a small HTML page) and GET /status.json: recent units and counts per state;
GET /status/unit/KEY (and .json): one unit's detail.

What they show is built by ``service.status_view``; this module checks who asks and renders.
Object names and error texts come from outside, so the page is rendered from
``service/templates/`` by a Jinja environment with autoescaping always on, and served with a CSP
that allows no script. With OIDC verification on, both need a token as ``POST /`` does, for the
status audience and allow-list (by default the pushers').
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from jinja2 import Environment, PackageLoader, StrictUndefined
from quart import Blueprint, Response, current_app, jsonify, request
from quart.typing import ResponseReturnValue

from service.auth import AuthError, CertificateCache, TokenVerifier
from service.errors import ConfigError, TransientError
from service.metrics_chart import Chart, chart
from service.models import UnitState
from service.runtime import runtime
from service.settings import Settings
from service.status_view import (
    BadQuery,
    StatusView,
    UnitView,
    filter_link,
    parse_query,
    snapshot,
    unit_detail,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
blueprint = Blueprint("status", __name__)

# The time filters the page offers as links (any ISO instant or age works in ?since=).
SINCE_CHOICES = ("1h", "24h", "7d")
# No script, no outside resources: the page is text and inline style only (it reloads itself
# with a meta refresh, which needs no script).
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'"
# Autoescaping always on: every value on the page is escaped unless marked safe (none is).
TEMPLATES = Environment(
    loader=PackageLoader("service", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Refused:
    """A request the page does not answer with data: its status code, label and reason."""

    code: int
    status: str
    reason: str


def verifier_for(settings: Settings, push: TokenVerifier | None) -> TokenVerifier | None:
    """Who may read the status: the status audience and list, else the pushers'; None = anyone."""
    audience = settings.status_audience or settings.auth_audience
    emails = settings.status_allowed_emails or settings.auth_allowed_emails
    if not audience:
        if settings.status_allowed_emails:
            raise ConfigError("INGEST_STATUS_ALLOWED_EMAILS needs INGEST_STATUS_AUDIENCE")
        return None
    # One certificate cache for both checks: the same Google keys sign both kinds of token.
    certs = push.certs if push is not None else CertificateCache(settings.auth_certs_url)
    return TokenVerifier(audience, emails, certs)


async def _authenticate() -> Refused | None:
    verifier: TokenVerifier | None = current_app.extensions.get("status_auth")
    if verifier is None:
        return None
    try:
        await verifier.verify(request.headers.get("Authorization"))
    except AuthError as exc:
        label = "unauthenticated" if exc.status == 401 else "forbidden"
        return Refused(exc.status, label, exc.reason)
    except TransientError as exc:
        return Refused(503, "unavailable", str(exc))
    return None


async def _guarded(read: Callable[[], Awaitable[T | None]]) -> T | Refused:
    """What ``read`` gives, once the caller may see it; a refusal otherwise (None: 404)."""
    refused = await _authenticate()
    if refused is not None:
        return refused
    try:
        found = await read()
    except BadQuery as exc:
        return Refused(400, "bad_request", str(exc))
    except TransientError as exc:
        return Refused(503, "unavailable", str(exc))
    return Refused(404, "not_found", "no such unit in the ledger") if found is None else found


async def _current() -> StatusView | Refused:
    async def read() -> StatusView:
        rt = runtime()
        query = parse_query(request.args)
        return await snapshot(rt.backends.ledger_store, backend=rt.settings.backend, query=query)

    return await _guarded(read)


async def _unit(key: str) -> UnitView | Refused:
    return await _guarded(lambda: unit_detail(runtime().backends.ledger_store, key))


def _refusal(refused: Refused, response: Response) -> Response:
    log.warning("refused a status request (%d): %s", refused.code, refused.reason)
    response.status_code = refused.code
    if refused.code == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _json(view: StatusView | UnitView | Refused) -> Response:
    if isinstance(view, Refused):
        return _refusal(view, jsonify({"status": view.status, "reason": view.reason}))
    response = jsonify(view)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/status.json")
async def status_json() -> ResponseReturnValue:
    return _json(await _current())


@blueprint.get("/status")
async def status_page() -> ResponseReturnValue:
    view = await _current()
    return _page(view if isinstance(view, Refused) else _render(view))


@blueprint.get("/status/unit/<key>.json")
async def unit_json(key: str) -> ResponseReturnValue:
    return _json(await _unit(key))


@blueprint.get("/status/unit/<key>")
async def unit_page(key: str) -> ResponseReturnValue:
    view = await _unit(key)
    if isinstance(view, Refused):
        return _page(view)
    page = TEMPLATES.get_template("unit.html").render(unit=view, fmt=_fmt)
    return _page(page)


def _page(body: str | Refused) -> Response:
    """An HTML page (or the page of a refusal) with the page's security headers."""
    if isinstance(body, Refused):
        html = TEMPLATES.get_template("status_error.html").render(
            code=body.code, reason=body.reason
        )
        response = _refusal(body, _html(html))
    else:
        response = _html(body)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _html(body: str) -> Response:
    return Response(body, content_type="text/html; charset=utf-8")


def _render(view: StatusView) -> str:
    def link(state: str | None, *, page: str = "", all_pipelines: bool = False) -> str:
        return filter_link(view, state, page=page, all_pipelines=all_pipelines)

    def since(age: str | None) -> str:
        return filter_link(view | {"since_filter": age}, view["state_filter"])

    return TEMPLATES.get_template("status.html").render(
        view=view,
        states=[s.value for s in UnitState],
        ages=SINCE_CHOICES,
        fmt=_fmt,
        link=link,
        since=since,
        chart=_chart(),
    )


def _chart() -> Chart | None:
    """The last hour's units per minute (service/metrics_chart.py), once the app serves."""
    metrics = runtime().metrics
    return chart(metrics.history.last_hour()) if metrics is not None else None


# /metrics answers the same readers as the status page (routes/metrics.py).
authenticate = _authenticate


def _fmt(value: Any) -> str:
    """Numbers with thousands separators, seconds as s or ms, nothing as a dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.1f} s"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
