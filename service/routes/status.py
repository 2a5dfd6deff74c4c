"""GET /status (a small HTML page) and GET /status.json: recent units and counts per state.

Everything shown comes from the ledger; object names come from outside, so the page is rendered
by a Jinja environment with autoescaping always on, and served with a CSP that allows no script.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypedDict

from jinja2 import Environment, StrictUndefined
from quart import Blueprint, Response, jsonify, request
from quart.typing import ResponseReturnValue

from service.errors import TransientError
from service.models import LedgerRecord, UnitState
from service.ports import IdempotencyStore
from service.runtime import runtime

blueprint = Blueprint("status", __name__)

# Units listed when the request does not say, and the most it may ask for.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Units counted per state before the count is shown as "at least".
COUNT_CAP = 1000
# No script, no outside resources: the page is text and inline style only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'"


class UnitView(TypedDict):
    key: str
    unit: str
    state: str
    pipeline: str
    object: str | None
    attempt: int
    rows_read: int | None
    rows_loaded: int | None
    rows_quarantined: int | None
    duration_seconds: float | None
    stages: dict[str, float]
    table: str | None
    quarantine_uri: str | None
    error: str | None
    event_id: str | None
    created_at: str
    updated_at: str


class CountView(TypedDict):
    count: int
    capped: bool  # True when there are at least `count` (the count stopped at COUNT_CAP)


class StatusView(TypedDict):
    generated_at: str
    backend: str
    state_filter: str | None
    limit: int
    counts: dict[str, CountView]
    units: list[UnitView]


def unit_view(record: LedgerRecord) -> UnitView:
    """One ledger record as plain JSON-ready values (also what `ingest ledger` prints)."""
    result = record.result
    # Claim to last update: the unit's run time once finished, its age while in progress.
    duration = (record.updated_at - record.created_at).total_seconds()
    return {
        "key": record.key,
        "unit": record.unit,
        "state": record.state.value,
        "pipeline": record.pipeline,
        "object": record.object_uri,
        "attempt": record.attempt,
        "rows_read": result.rows_read if result else None,
        "rows_loaded": result.rows_loaded if result else None,
        "rows_quarantined": result.rows_quarantined if result else None,
        "duration_seconds": round(duration, 3),
        "stages": dict(result.durations) if result else {},
        "table": result.table if result else None,
        "quarantine_uri": result.quarantine_uri if result else None,
        "error": record.error,
        "event_id": record.event_id,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
    }


async def snapshot(
    store: IdempotencyStore, *, backend: str, state: UnitState | None, limit: int
) -> StatusView:
    counts: dict[str, CountView] = {}
    for each in UnitState:
        found = len(await store.list(state=each, limit=COUNT_CAP))
        counts[each.value] = {"count": found, "capped": found >= COUNT_CAP}
    units = [unit_view(s.record) for s in await store.list(state=state, limit=limit)]
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "state_filter": state.value if state else None,
        "limit": limit,
        "counts": counts,
        "units": units,
    }


class BadQuery(ValueError):
    """A query parameter that cannot be used; answered 400."""


def _query() -> tuple[UnitState | None, int]:
    raw_state = request.args.get("state", "").strip().upper()
    raw_limit = request.args.get("limit", "").strip()
    try:
        state = UnitState(raw_state) if raw_state else None
    except ValueError as exc:
        allowed = ", ".join(s.value for s in UnitState)
        raise BadQuery(f"state must be one of {allowed}") from exc
    if not raw_limit:
        return state, DEFAULT_LIMIT
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return state, int(raw_limit)


async def _current() -> StatusView | tuple[dict[str, str], int]:
    try:
        state, limit = _query()
    except BadQuery as exc:
        return {"status": "bad_request", "reason": str(exc)}, 400
    rt = runtime()
    try:
        return await snapshot(
            rt.backends.ledger_store, backend=rt.settings.backend, state=state, limit=limit
        )
    except TransientError as exc:
        return {"status": "unavailable", "reason": str(exc)}, 503


@blueprint.get("/status.json")
async def status_json() -> ResponseReturnValue:
    view = await _current()
    if isinstance(view, tuple):
        body, code = view
        return jsonify(body), code
    response = jsonify(view)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/status")
async def status_page() -> ResponseReturnValue:
    view = await _current()
    if isinstance(view, tuple):
        body, code = view
        html = PAGE_ERROR.render(code=code, reason=body["reason"])
    else:
        code = 200
        html = PAGE.render(view=view, states=[s.value for s in UnitState], fmt=_fmt)
    response = Response(html, status=code, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _fmt(value: Any) -> str:
    """Numbers with thousands separators, seconds as s or ms, nothing as a dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:,.1f} s"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# Autoescaping always on: every value on the page is escaped unless marked safe (none is).
JINJA = Environment(
    autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
)

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2733; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
.meta { color: #5b6675; margin-bottom: 1rem; }
.counts { display: flex; gap: .75rem; margin-bottom: 1rem; flex-wrap: wrap; }
.count { border: 1px solid #d5dbe3; border-radius: 6px; padding: .5rem .9rem; min-width: 8rem;
  text-decoration: none; color: inherit; }
.count b { display: block; font-size: 1.4rem; }
.count.active { outline: 2px solid #1d2733; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #e6e9ee;
  vertical-align: top; }
th { background: #f3f5f8; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.obj { overflow-wrap: anywhere; font-family: ui-monospace, monospace; font-size: 12px;
  min-width: 16rem; }
td.err { color: #a11d1d; max-width: 28rem; word-break: break-word; }
.state { border-radius: 4px; padding: .05rem .4rem; font-size: 12px; font-weight: 600; }
.COMPLETED { background: #dff3e4; color: #17602c; }
.FAILED { background: #fbe1e1; color: #a11d1d; }
.IN_PROGRESS { background: #fff1c9; color: #7a5600; }
.empty { color: #5b6675; padding: 1rem 0; }
"""

PAGE = JINJA.from_string(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ingest status</title>
<style>"""
    + STYLE
    + """</style>
</head>
<body>
<h1>Ingestion status</h1>
<div class="meta">backend {{ view.backend }} · generated {{ view.generated_at }}
 · <a href="status.json{% if view.state_filter %}?state={{ view.state_filter }}{% endif %}">JSON</a>
</div>
<nav class="counts" aria-label="units per state">
<a class="count{% if not view.state_filter %} active{% endif %}" href="?" id="count-all">all states
<b>{{ fmt(view.counts.values() | sum(attribute="count")) }}</b></a>
{% for state in states %}
{% set c = view.counts[state] %}
<a class="count{% if view.state_filter == state %} active{% endif %}" href="?state={{ state }}"
 id="count-{{ state }}">{{ state }}<b>{{ fmt(c.count) }}{% if c.capped %}+{% endif %}</b></a>
{% endfor %}
</nav>
{% if view.units %}
<table id="units">
<thead><tr>
<th>updated (UTC)</th><th>state</th><th>pipeline</th><th>object</th>
<th class="num">rows loaded</th><th class="num">quarantined</th><th class="num">duration</th>
<th class="num">attempt</th><th>error</th>
</tr></thead>
<tbody>
{% for u in view.units %}
<tr data-key="{{ u.key }}">
<td>{{ u.updated_at[:19] | replace("T", " ") }}</td>
<td><span class="state {{ u.state }}">{{ u.state }}</span></td>
<td>{{ u.pipeline }}</td>
<td class="obj">{{ u.object or u.unit }}</td>
<td class="num">{{ fmt(u.rows_loaded) }}</td>
<td class="num">{{ fmt(u.rows_quarantined) }}</td>
<td class="num">{{ fmt(u.duration_seconds) }}</td>
<td class="num">{{ u.attempt }}</td>
<td class="err">{{ u.error or "" }}</td>
</tr>
{% endfor %}
</tbody>
</table>
<div class="meta">{{ view.units | length }} most recent units{% if view.state_filter %}
 in state {{ view.state_filter }}{% endif %} (newest first, at most {{ view.limit }}).</div>
{% else %}
<p class="empty">No units{% if view.state_filter %} in state {{ view.state_filter }}{% endif %}
 yet.</p>
{% endif %}
</body>
</html>
"""
)

PAGE_ERROR = JINJA.from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ingest status: {{ code }}</title></head>
<body><h1>Status unavailable ({{ code }})</h1><p>{{ reason }}</p></body></html>
"""
)
