"""GET /status and /status.json: through the app, behind OIDC, and in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tomllib
from collections.abc import AsyncIterator, Iterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
from quart.typing import TestAppProtocol as RunningApp

from service.adapters.local.directory_store import DirectoryObjectStore
from service.app import create_app
from service.errors import ConfigError, TransientError
from service.recording import load_requests, to_json
from service.routes.status import CSP
from service.samples import object_resource, storage_cloudevent
from service.settings import Settings, replace_settings
from tests.conftest import EXAMPLES, ROOT, seed_examples
from tests.test_auth import AUDIENCE, PUSHER, Key, write_certs
from tests.test_cli_common import Workspace, make_workspace, run_cli, serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# A name from outside that would run script if the page did not escape it.
HOSTILE = 'customers/<script>alert("x")</script>&<i id=pwned>.csv'
BAD_CUSTOMERS = b"customer_id,name,country,signed_up\n,no id,FR,\n"


async def ingest_examples(app: RunningApp) -> None:
    for path in sorted((EXAMPLES / "events").glob("*.json")):
        [request] = load_requests(path)
        response = await app.test_client().post("/", headers=request.headers, data=request.body)
        assert response.status_code == 200


async def test_status_json_lists_units_and_counts(embedded_app: RunningApp) -> None:
    await ingest_examples(embedded_app)
    response = await embedded_app.test_client().get("/status.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.get_json()
    assert body["counts"] == {
        "IN_PROGRESS": {"count": 0, "capped": False},
        "COMPLETED": {"count": 3, "capped": False},
        "FAILED": {"count": 0, "capped": False},
    }
    assert (body["backend"], body["limit"], body["state_filter"]) == ("embedded", 50, None)
    by_object = {u["object"]: u for u in body["units"]}
    orders = by_object["gs://landing/orders/2026-11-21.csv#1"]
    assert (orders["state"], orders["pipeline"]) == ("COMPLETED", "orders")
    assert (orders["rows_loaded"], orders["rows_quarantined"], orders["rows_read"]) == (6, 2, 8)
    assert orders["duration_seconds"] >= 0
    assert set(orders["stages"]) >= {"extract", "parse", "validate", "load"}
    assert orders["error"] is None


async def test_status_json_filters_by_state_and_limits(embedded_app: RunningApp) -> None:
    await ingest_examples(embedded_app)
    client = embedded_app.test_client()
    failed = await (await client.get("/status.json?state=failed")).get_json()
    assert (failed["state_filter"], failed["units"]) == ("FAILED", [])
    two = await (await client.get("/status.json?limit=2")).get_json()
    assert len(two["units"]) == 2
    assert two["counts"]["COMPLETED"]["count"] == 3  # counts are not limited by the listing


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("state=DONE", "state must be one of IN_PROGRESS, COMPLETED, FAILED"),
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("limit=501", "limit must be a whole number from 1 to 500"),
        ("limit=ten", "limit must be a whole number from 1 to 500"),
        ("pipeline=" + "p" * 201, "pipeline must be at most 200 characters"),
        ("since=yesterday", "since must be an ISO 8601 time or an age like 30m, 2h, 7d"),
        ("refresh=-1", "refresh must be a whole number from 0 to 3600"),
    ],
)
async def test_bad_queries_are_400(embedded_app: RunningApp, query: str, reason: str) -> None:
    client = embedded_app.test_client()
    response = await client.get(f"/status.json?{query}")
    assert response.status_code == 400
    assert (await response.get_json()) == {"status": "bad_request", "reason": reason}
    page = await client.get(f"/status?{query}")
    assert page.status_code == 400
    assert reason in await page.get_data(as_text=True)


async def test_page_lists_units_with_counts(embedded_app: RunningApp) -> None:
    await ingest_examples(embedded_app)
    response = await embedded_app.test_client().get("/status")
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == CSP
    html = await response.get_data(as_text=True)
    assert html.count("<tr data-key=") == 3
    assert re.search(r'id="count-COMPLETED">COMPLETED<b>3</b>', html)
    assert "gs://landing/customers/customers.csv#1" in html
    assert "<script" not in html


async def test_page_escapes_names_from_outside(
    embedded_app: RunningApp, embedded_settings: Settings
) -> None:
    store = DirectoryObjectStore(embedded_settings.data_dir / "buckets")
    ref = store.put("landing", HOSTILE, BAD_CUSTOMERS, "text/csv")
    assert ref.generation is not None
    event = storage_cloudevent(object_resource("landing", HOSTILE, ref.generation, BAD_CUSTOMERS))
    client = embedded_app.test_client()
    assert (await client.post("/", headers=event.headers, data=event.body)).status_code == 200
    html = await (await client.get("/status")).get_data(as_text=True)
    assert "<script" not in html and "<i " not in html
    assert (
        "customers/&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&lt;i id=pwned&gt;.csv"
        in html
    )
    assert 'class="state FAILED"' in html
    body = await (await client.get("/status.json?state=FAILED")).get_json()
    assert body["units"][0]["object"] == f"gs://landing/{HOSTILE}#{ref.generation}"


async def test_an_empty_ledger(embedded_app: RunningApp) -> None:
    html = await (await embedded_app.test_client().get("/status")).get_data(as_text=True)
    assert "No units" in html
    assert 'id="count-FAILED">FAILED<b>0</b>' in html


async def test_ledger_unavailable_is_503(
    embedded_app: RunningApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = embedded_app.app.extensions["runtime"].backends.ledger_store  # type: ignore[attr-defined]

    async def unavailable(*args: object, **kwargs: object) -> list[object]:
        raise TransientError("ledger down")

    monkeypatch.setattr(store, "list", unavailable)
    response = await embedded_app.test_client().get("/status.json")
    assert response.status_code == 503
    assert (await response.get_json())["status"] == "unavailable"
    assert (await embedded_app.test_client().get("/status")).status_code == 503


async def test_a_pipeline_narrows_the_json_and_the_page(embedded_app: RunningApp) -> None:
    await ingest_examples(embedded_app)
    client = embedded_app.test_client()
    body = await (await client.get("/status.json?pipeline=orders")).get_json()
    assert body["pipeline_filter"] == "orders"
    assert body["counts"]["COMPLETED"] == {"count": 2, "capped": False}
    assert {u["pipeline"] for u in body["units"]} == {"orders"}
    assert len(body["units"]) == 2
    html = await (await client.get("/status?pipeline=orders&state=completed")).get_data(
        as_text=True
    )
    assert html.count("<tr data-key=") == 2
    assert re.search(r'id="count-COMPLETED">COMPLETED<b>2</b>', html)
    # The links keep the pipeline; one leads back to every pipeline.
    assert 'href="?state=FAILED&amp;pipeline=orders"' in html
    assert 'href="status.json?state=COMPLETED&amp;pipeline=orders"' in html
    assert 'href="?state=COMPLETED" id="all-pipelines"' in html
    none = await (await client.get("/status.json?pipeline=nowhere")).get_json()
    assert none["units"] == []
    assert {c["count"] for c in none["counts"].values()} == {0}


async def test_a_time_narrows_the_units_and_the_links_keep_it(embedded_app: RunningApp) -> None:
    await ingest_examples(embedded_app)
    client = embedded_app.test_client()
    recent = await (await client.get("/status.json?since=1h")).get_json()
    assert (recent["since_filter"], len(recent["units"])) == ("1h", 3)
    future = await (await client.get("/status.json?since=2999-01-01T00:00:00Z")).get_json()
    assert future["units"] == []
    assert {c["count"] for c in future["counts"].values()} == {0}  # counts honour the time too
    assert recent["counts"]["COMPLETED"]["count"] == 3
    html = await (await client.get("/status?since=24h&pipeline=orders")).get_data(as_text=True)
    assert 'href="?state=FAILED&amp;pipeline=orders&amp;since=24h"' in html
    assert 'href="?pipeline=orders" id="since-all"' in html
    assert 'id="since-24h" class="active"' in html


async def test_the_page_reloads_itself_without_script(embedded_app: RunningApp) -> None:
    client = embedded_app.test_client()
    html = await (await client.get("/status")).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="15">' in html
    assert "<script" not in html
    still = await (await client.get("/status?refresh=0")).get_data(as_text=True)
    assert 'http-equiv="refresh"' not in still


async def test_the_page_shows_table_rows_and_quarantine_and_links_each_unit(
    embedded_app: RunningApp,
) -> None:
    await ingest_examples(embedded_app)
    client = embedded_app.test_client()
    body = await (await client.get("/status.json?pipeline=orders")).get_json()
    unit = next(u for u in body["units"] if u["rows_quarantined"])
    html = await (await client.get("/status")).get_data(as_text=True)
    row = re.search(rf'<tr data-key="{unit["key"]}">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[4] == "sales.orders"
    assert cells[5:9] == ["8", "6", f'<a href="status/unit/{unit["key"]}#quarantine">2</a>', "0"]
    assert f'<a href="status/unit/{unit["key"]}">' in cells[3]


async def test_a_units_detail_gives_stages_reason_and_bad_row_reasons(
    embedded_app: RunningApp, embedded_settings: Settings
) -> None:
    store = DirectoryObjectStore(embedded_settings.data_dir / "buckets")
    bad = b"customer_id,name,country,signed_up\nC1,ok,FR,\n,no id,FR,\n"
    ref = store.put("landing", "customers/bad.csv", bad, "text/csv")
    assert ref.generation is not None
    event = storage_cloudevent(object_resource("landing", ref.name, ref.generation, bad))
    client = embedded_app.test_client()
    answer = await client.post("/", headers=event.headers, data=event.body)
    assert (await answer.get_json())["reason"].startswith("validate: 1 of 2 rows bad, none allowed")
    [unit] = (await (await client.get("/status.json?state=FAILED")).get_json())["units"]
    detail = await client.get(f"/status/unit/{unit['key']}.json")
    assert (await detail.get_json()) == unit
    page = await client.get(f"/status/unit/{unit['key']}")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == CSP
    html = await page.get_data(as_text=True)
    assert '<span class="state FAILED">FAILED</span>' in html
    assert re.search(r'<p class="err" id="reason">validate: 1 of 2 rows bad', html)
    assert re.search(r'<td>validate</td><td class="num">\d+ ms</td>', html)
    reason = '<tr><td>customer_id: required value is missing</td><td class="num">1</td></tr>'
    assert reason in html
    assert f"ingest quarantine {unit['key'][:12]}" in html
    assert "<script" not in html


@pytest.mark.parametrize("key", ["0" * 40, "not-a-key", "0" * 39])
async def test_an_unknown_unit_is_404(embedded_app: RunningApp, key: str) -> None:
    client = embedded_app.test_client()
    response = await client.get(f"/status/unit/{key}.json")
    assert response.status_code == 404
    assert (await response.get_json())["status"] == "not_found"
    assert (await client.get(f"/status/unit/{key}")).status_code == 404


def test_every_template_is_package_data() -> None:
    """The image installs the package (not the source tree): templates must travel with it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["service"]
    templates = sorted((ROOT / "service" / "templates").iterdir())
    assert templates
    for path in templates:
        inside = path.relative_to(ROOT / "service").as_posix()
        assert any(fnmatch(inside, pattern) for pattern in patterns), inside


# With OIDC verification on: a token for the status audience and allow-list.

OPERATORS = "https://status.example.com"
OPERATOR = "ana@acme-data.example"
PAGES = ("/status", "/status.json")


@pytest.fixture(scope="module")
def key() -> Key:
    return Key("key-1")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Push authentication on, for the pushers (as in tests/test_auth.py).
PUSHERS: dict[str, object] = {"auth_audience": AUDIENCE, "auth_allowed_emails": (PUSHER,)}


async def app_with(
    settings: Settings, key: Key, tmp_path: Path, **changes: object
) -> AsyncIterator[RunningApp]:
    """The app trusting ``key``'s certificate, with the settings changed as given."""
    certs = write_certs(tmp_path / "certs.json", key)
    settings = replace_settings(settings, auth_certs_url=certs, **changes)
    seed_examples(settings)
    async with create_app(settings).test_app() as test_app:
        yield test_app


@pytest.fixture
async def guarded(
    key: Key, embedded_settings: Settings, tmp_path: Path
) -> AsyncIterator[RunningApp]:
    """Verification on, for the pushers only: the status page takes their audience and list."""
    async for app in app_with(embedded_settings, key, tmp_path, **PUSHERS):
        yield app


@pytest.fixture
async def for_operators(
    key: Key, embedded_settings: Settings, tmp_path: Path
) -> AsyncIterator[RunningApp]:
    """Verification on, with an audience and allow-list of the status page's own."""
    operators = {"status_audience": OPERATORS, "status_allowed_emails": (OPERATOR,)}
    async for app in app_with(embedded_settings, key, tmp_path, **PUSHERS, **operators):
        yield app


@pytest.mark.parametrize("page", PAGES)
async def test_without_a_token_the_status_is_401(guarded: RunningApp, key: Key, page: str) -> None:
    await ingest_examples_as_pusher(guarded, key)
    response = await guarded.test_client().get(page)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = await response.get_data(as_text=True)
    assert "a bearer token is required" in body
    assert "landing" not in body and "orders" not in body  # nothing of the ledger shows


@pytest.mark.parametrize("page", PAGES)
async def test_a_valid_token_reads_the_status(guarded: RunningApp, key: Key, page: str) -> None:
    await ingest_examples_as_pusher(guarded, key)
    response = await guarded.test_client().get(page, headers=bearer(key.token()))
    assert response.status_code == 200
    assert "gs://landing/orders/2026-11-21.csv#1" in await response.get_data(as_text=True)


async def test_bad_tokens_are_refused(guarded: RunningApp, key: Key) -> None:
    client = guarded.test_client()
    expired = await client.get("/status.json", headers=bearer(key.token(exp=1, iat=0)))
    assert expired.status_code == 401
    other = await client.get("/status.json", headers=bearer(key.token(email="x@evil.example")))
    assert other.status_code == 403
    assert (await other.get_json()) == {
        "status": "forbidden",
        "reason": "the caller is not allowed",
    }
    page = await client.get("/status", headers=bearer(key.token(aud="elsewhere")))
    assert page.status_code == 403
    assert "Status unavailable (403)" in await page.get_data(as_text=True)


async def test_operators_have_their_own_audience_and_list(
    for_operators: RunningApp, key: Key
) -> None:
    client = for_operators.test_client()
    operator = key.token(aud=OPERATORS, email=OPERATOR)
    assert (await client.get("/status.json", headers=bearer(operator))).status_code == 200
    assert (await client.get("/status", headers=bearer(operator))).status_code == 200
    # A pusher's token does not open the page, nor an operator's the event endpoint.
    pusher = key.token()
    assert (await client.get("/status.json", headers=bearer(pusher))).status_code == 403
    posted = await client.post("/", headers=bearer(operator), json={})
    assert posted.status_code == 403


async def test_without_verification_the_status_is_open(embedded_app: RunningApp) -> None:
    assert (await embedded_app.test_client().get("/status.json")).status_code == 200


def test_a_status_allow_list_needs_an_audience(embedded_settings: Settings) -> None:
    settings = replace_settings(embedded_settings, status_allowed_emails=(OPERATOR,))
    with pytest.raises(ConfigError, match="INGEST_STATUS_ALLOWED_EMAILS needs"):
        create_app(settings)


async def test_the_status_alone_can_be_guarded(
    key: Key, embedded_settings: Settings, tmp_path: Path
) -> None:
    async for app in app_with(embedded_settings, key, tmp_path, status_audience=OPERATORS):
        client = app.test_client()
        assert (await client.get("/status.json")).status_code == 401
        operator = bearer(key.token(aud=OPERATORS, email=OPERATOR))
        assert (await client.get("/status.json", headers=operator)).status_code == 200


async def ingest_examples_as_pusher(app: RunningApp, key: Key) -> None:
    """The sample events, posted with the pusher's token (the event endpoint needs it too)."""
    client = app.test_client()
    for path in sorted((EXAMPLES / "events").glob("*.json")):
        [request] = load_requests(path)
        headers = {**request.headers, **bearer(key.token())}
        assert (await client.post("/", headers=headers, data=request.body)).status_code == 200


# In a real browser: headless Chromium (Debian's package; scripts/setup-browser installs it).


@pytest.fixture
def browser_profile(tmp_path: Path) -> Iterator[Path]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    yield profile
    shutil.rmtree(profile, ignore_errors=True)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def landed(space: Workspace) -> None:
    """The sample events, and one hostile-named file that fails, ingested in-process."""
    store = space.seed()
    ref = store.put("landing", HOSTILE, BAD_CUSTOMERS, "text/csv")
    assert ref.generation is not None
    event = storage_cloudevent(object_resource("landing", HOSTILE, ref.generation, BAD_CUSTOMERS))
    hostile = space.root / "hostile.json"
    hostile.write_text(json.dumps(to_json(event.headers, event.body)))
    replayed = run_cli(
        ["replay", str(EXAMPLES / "events"), str(hostile), "--in-process"], space.env()
    )
    assert replayed.exit_code == 1  # the hostile file fails, as it should
    assert "3 loaded" in replayed.output and "1 failed" in replayed.output


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="chromium not installed: run scripts/setup-browser"
)
def test_status_page_in_headless_chromium(tmp_path: Path, browser_profile: Path) -> None:
    space = make_workspace(tmp_path)
    landed(space)
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "status-page.png"
    screenshot.unlink(missing_ok=True)
    detail_shot = ARTIFACTS / "status-unit.png"
    filtered_shot = ARTIFACTS / "status-failed-last-hour.png"
    for old in (detail_shot, filtered_shot):
        old.unlink(missing_ok=True)
    with serving(space) as server:
        url = f"{server.url}/status"
        dom = chromium(browser_profile, "--dump-dom", url)
        shot = chromium(
            browser_profile, f"--screenshot={screenshot}", "--window-size=1366,900", url
        )
        [failed_key] = re.findall(
            r'<tr data-key="([0-9a-f]{40})">\s*<td[^>]*>[^<]*</td>\s*'
            r'<td><span class="state FAILED">',
            dom.stdout,
        )
        detail_url = f"{server.url}/status/unit/{failed_key}"
        detail = chromium(browser_profile, "--dump-dom", detail_url)
        detail_png = chromium(
            browser_profile, f"--screenshot={detail_shot}", "--window-size=1000,800", detail_url
        )
        filtered_url = f"{server.url}/status?state=FAILED&since=1h"
        filtered = chromium(browser_profile, "--dump-dom", filtered_url)
        filtered_png = chromium(
            browser_profile, f"--screenshot={filtered_shot}", "--window-size=1200,600", filtered_url
        )
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    # What a person sees: the title, the counts per state, and one row per unit.
    assert "<h1>Ingestion status</h1>" in html
    assert re.search(r'id="count-COMPLETED">COMPLETED<b>3</b>', html)
    assert re.search(r'id="count-FAILED">FAILED<b>1</b>', html)
    rows = re.findall(r"<tr data-key=\"[0-9a-f]{40}\">(.*?)</tr>", html, re.S)
    assert len(rows) == 4
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows]
    orders_21 = next(c for c in cells if "orders/2026-11-21.csv" in c[3])
    assert orders_21[1] == '<span class="state COMPLETED">COMPLETED</span>'
    assert (orders_21[2], orders_21[4], orders_21[6]) == ("orders", "sales.orders", "6")
    assert ">2</a>" in orders_21[7]  # quarantined, linked to the unit's bad rows
    failed = next(c for c in cells if "FAILED" in c[1])
    assert "rows bad, none allowed" in failed[11]
    # The hostile name is text in the page, not markup: the browser built no element from it.
    assert "<script" not in html and "<i " not in html and 'id="pwned"' not in html
    assert '&lt;script&gt;alert("x")&lt;/script&gt;&amp;&lt;i id=pwned&gt;.csv' in failed[3]
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png_size(screenshot) == (1366, 900)
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
    # The failed unit's own page: its reason, stages with timings, and its top bad-row reason.
    page = detail.stdout
    assert '<span class="state FAILED">FAILED</span>' in page
    assert re.search(r'id="reason">validate: 1 of 1 rows bad, none allowed', page)
    assert re.search(r'<td>validate</td><td class="num">[\d.]+ (ms|s)</td>', page)
    assert "customer_id: required value is missing" in page
    assert "<script" not in page and 'id="pwned"' not in page
    assert detail_png.returncode == 0 and png_size(detail_shot) == (1000, 800)
    # Filtered by state and time: only the failed unit, and the filters are shown as chosen.
    assert len(re.findall(r"<tr data-key=", filtered.stdout)) == 1
    assert 'id="since-1h" class="active"' in filtered.stdout
    assert filtered_png.returncode == 0 and png_size(filtered_shot) == (1200, 600)
