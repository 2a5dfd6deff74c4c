"""OIDC verification with keys and certificates made here: no internet, no Google."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from service.app import create_app
from service.auth import AuthError, CertificateCache, TokenVerifier, fetch_certs
from service.errors import ConfigError, TransientError
from service.settings import Settings, replace_settings

# Bound on waiting for a background thread in a test (the loops stop by themselves).
READY_SECONDS = 30.0
AUDIENCE = "https://ingest-abc123-uc.a.run.app/"
PUSHER = "push-invoker@acme-data.iam.gserviceaccount.com"


class Key:
    """An RSA key and a self-signed certificate, as Google publishes for its signing keys."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test.local")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(private, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        private_pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.signer = crypt.RSASigner.from_string(private_pem, key_id=kid)

    def token(self, kid: str | None = None, **claims: Any) -> str:
        """A Google-shaped ID token; ``kid`` claims another key's id in the header."""
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "aud": AUDIENCE,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": PUSHER,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return str(jwt.encode(self.signer, payload, key_id=kid).decode())


@pytest.fixture(scope="module")
def key() -> Key:
    return Key("key-1")


@pytest.fixture(scope="module")
def other_key() -> Key:
    return Key("key-2")


def write_certs(path: Path, *keys: Key) -> str:
    path.write_text(json.dumps({k.kid: k.cert_pem for k in keys}))
    return path.as_uri()


@pytest.fixture
def verifier(key: Key, tmp_path: Path) -> TokenVerifier:
    url = write_certs(tmp_path / "certs.json", key)
    return TokenVerifier(AUDIENCE, (PUSHER,), CertificateCache(url))


async def test_a_good_token_gives_the_callers_identity(key: Key, verifier: TokenVerifier) -> None:
    identity = await verifier.verify(f"Bearer {key.token()}")
    assert (identity.email, identity.subject) == (PUSHER, "1234567890")


async def test_the_issuer_without_scheme_is_google_too(key: Key, verifier: TokenVerifier) -> None:
    await verifier.verify(f"bearer {key.token(iss='accounts.google.com')}")


def tampered(key: Key) -> str:
    """A genuine token whose claims were changed after signing."""
    header, payload, signature = key.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "attacker@evil.example"
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{changed}.{signature}"


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (lambda k, o: None, 401),
        (lambda k, o: "", 401),
        (lambda k, o: "Basic dXNlcjpwYXNz", 401),
        (lambda k, o: "Bearer ", 401),
        (lambda k, o: "Bearer not.a.token", 401),
        (lambda k, o: "Bearer " + "x" * 5000, 401),
        (lambda k, o: f"Bearer {o.token()}", 401),  # a key id nobody published
        (lambda k, o: f"Bearer {o.token(kid=k.kid)}", 401),  # signed by another key
        (lambda k, o: f"Bearer {tampered(k)}", 401),  # claims changed after signing
        (lambda k, o: f"Bearer {k.token(exp=int(time.time()) - 3600)}", 401),  # expired
        (lambda k, o: f"Bearer {k.token(iat=None)}", 401),  # no issued-at
        (lambda k, o: f"Bearer {k.token(nbf=int(time.time()) + 3600)}", 401),  # not valid yet
        (lambda k, o: f"Bearer {k.token(nbf='yesterday')}", 401),
        (lambda k, o: f"Bearer {k.token(iss='https://evil.example')}", 401),
        (lambda k, o: f"Bearer {k.token(aud='https://other.run.app/')}", 403),
        (lambda k, o: f"Bearer {k.token(email='someone@else.com')}", 403),
        (lambda k, o: f"Bearer {k.token(email=None)}", 403),
        (lambda k, o: f"Bearer {k.token(email_verified=False)}", 403),
    ],
    ids=[
        "no-header",
        "empty",
        "basic",
        "bearer-nothing",
        "garbage",
        "long-garbage",
        "unknown-kid",
        "forged",
        "tampered",
        "expired",
        "no-iat",
        "future-nbf",
        "nbf-not-a-time",
        "wrong-issuer",
        "wrong-audience",
        "wrong-email",
        "no-email",
        "email-unverified",
    ],
)
async def test_bad_tokens_are_401_and_wrong_callers_403(
    key: Key, other_key: Key, verifier: TokenVerifier, make: Any, status: int
) -> None:
    with pytest.raises(AuthError) as refused:
        await verifier.verify(make(key, other_key))
    assert refused.value.status == status


@pytest.mark.parametrize("offset", [-3600, 0, 20])  # past, now, within the clock skew
async def test_a_token_valid_from_now_or_earlier_passes(
    key: Key, verifier: TokenVerifier, offset: int
) -> None:
    await verifier.verify(f"Bearer {key.token(nbf=int(time.time()) + offset)}")


async def test_unsigned_alg_none_tokens_are_refused(key: Key, verifier: TokenVerifier) -> None:
    _, payload, _ = key.token().split(".")
    header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"  # {"alg":"none","typ":"JWT"}
    with pytest.raises(AuthError) as refused:
        await verifier.verify(f"Bearer {header}.{payload}.")
    assert refused.value.status == 401


async def test_any_email_passes_when_no_list_is_set(key: Key, tmp_path: Path) -> None:
    url = write_certs(tmp_path / "certs.json", key)
    open_verifier = TokenVerifier(AUDIENCE, (), CertificateCache(url))
    await open_verifier.verify(f"Bearer {key.token(email='anyone@else.com')}")


async def test_a_rotated_key_is_fetched_once_then_cached(
    key: Key, other_key: Key, tmp_path: Path
) -> None:
    path = tmp_path / "certs.json"
    url = write_certs(path, key)
    fetched: list[str] = []

    def counting(source: str) -> tuple[dict[str, str], float | None]:
        fetched.append(source)
        return fetch_certs(source)

    cache = CertificateCache(url, counting, min_refetch_seconds=0)
    verifier = TokenVerifier(AUDIENCE, (), cache)
    await verifier.verify(f"Bearer {key.token()}")
    await verifier.verify(f"Bearer {key.token()}")
    assert len(fetched) == 1
    write_certs(path, key, other_key)  # Google publishes the next key
    await verifier.verify(f"Bearer {other_key.token()}")
    assert len(fetched) == 2
    await asyncio.gather(*(verifier.verify(f"Bearer {other_key.token()}") for _ in range(5)))
    assert len(fetched) == 2


async def test_unknown_key_ids_cannot_force_a_fetch_per_request(
    key: Key, other_key: Key, tmp_path: Path
) -> None:
    fetched: list[str] = []

    def counting(source: str) -> tuple[dict[str, str], float | None]:
        fetched.append(source)
        return fetch_certs(source)

    url = write_certs(tmp_path / "certs.json", key)
    verifier = TokenVerifier(AUDIENCE, (), CertificateCache(url, counting))
    for _ in range(5):
        with pytest.raises(AuthError):
            await verifier.verify(f"Bearer {other_key.token()}")
    assert len(fetched) == 1


class HangingFetch:
    """A certs endpoint that hangs until released, then fails; counts the fetches."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, url: str) -> tuple[dict[str, str], float | None]:
        self.calls += 1
        self.started.set()
        self.release.wait(READY_SECONDS)
        raise TimeoutError("the certs endpoint did not answer")


async def test_waiters_share_one_fetch_of_a_hanging_certs_endpoint(key: Key) -> None:
    fetch = HangingFetch()
    verifier = TokenVerifier(AUDIENCE, (), CertificateCache("https://certs.test/", fetch))
    waiters = [asyncio.create_task(verifier.verify(f"Bearer {key.token()}")) for _ in range(5)]
    # The five have all asked by then: they ran before this task's first wait ended.
    assert await asyncio.to_thread(fetch.started.wait, READY_SECONDS)
    fetch.release.set()
    answers = await asyncio.gather(*waiters, return_exceptions=True)
    assert [type(a) for a in answers] == [TransientError] * 5
    assert fetch.calls == 1


class CertsHandler(BaseHTTPRequestHandler):
    body = b"{}"
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "public, max-age=19800, must-revalidate, no-transform")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def certs_server(key: Key) -> Iterator[str]:
    CertsHandler.body = json.dumps({key.kid: key.cert_pem}).encode()
    CertsHandler.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), CertsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/oauth2/v1/certs"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_certificates_over_http_honour_max_age(key: Key, certs_server: str) -> None:
    certs, max_age = fetch_certs(certs_server)
    assert certs == {key.kid: key.cert_pem}
    assert max_age == 19800
    verifier = TokenVerifier(AUDIENCE, (PUSHER,), CertificateCache(certs_server))
    for _ in range(3):
        await verifier.verify(f"Bearer {key.token()}")
    assert CertsHandler.hits == 2  # the direct fetch above, then one for the verifier


async def test_unreachable_certificates_are_transient(key: Key) -> None:
    with socket_port() as port:
        url = f"http://127.0.0.1:{port}/certs"
    verifier = TokenVerifier(AUDIENCE, (), CertificateCache(url))
    with pytest.raises(TransientError):
        await verifier.verify(f"Bearer {key.token()}")


class socket_port:
    """A port that was free a moment ago and has nobody listening."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_settings_are_checked_at_start_up(embedded_settings: Settings) -> None:
    assert TokenVerifier.from_settings(embedded_settings) is None
    with pytest.raises(ConfigError, match="INGEST_AUTH_AUDIENCE"):
        TokenVerifier.from_settings(replace_settings(embedded_settings, auth_allowed_emails=("a",)))
    with pytest.raises(ConfigError, match="INGEST_AUTH_CERTS_URL"):
        TokenVerifier.from_settings(
            replace_settings(embedded_settings, auth_audience="x", auth_certs_url="ftp://x")
        )


def test_the_environment_turns_authentication_on(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "INGEST_AUTH_AUDIENCE": AUDIENCE,
            "INGEST_AUTH_ALLOWED_EMAILS": f"{PUSHER}, other@x.iam.gserviceaccount.com",
            "INGEST_AUTH_CERTS_URL": (tmp_path / "certs.json").as_uri(),
        }
    )
    verifier = TokenVerifier.from_settings(settings)
    assert verifier is not None
    assert verifier.allowed_emails == {PUSHER, "other@x.iam.gserviceaccount.com"}


SCHEDULER = json.dumps({"message": {"messageId": "1", "attributes": {"pipeline": "nope"}}})


async def test_the_app_refuses_before_reading_and_lets_health_checks_through(
    key: Key, embedded_settings: Settings, tmp_path: Path
) -> None:
    url = write_certs(tmp_path / "certs.json", key)
    settings = replace_settings(
        embedded_settings, auth_audience=AUDIENCE, auth_allowed_emails=(PUSHER,), auth_certs_url=url
    )
    app = create_app(settings)
    headers = {"Content-Type": "application/json"}
    async with app.test_app() as test_app:
        client = test_app.test_client()
        missing = await client.post("/", headers=headers, data=SCHEDULER)
        wrong = await client.post(
            "/",
            headers={**headers, "Authorization": f"Bearer {key.token(aud='x')}"},
            data=SCHEDULER,
        )
        good = await client.post(
            "/", headers={**headers, "Authorization": f"Bearer {key.token()}"}, data=SCHEDULER
        )
        health = await client.get("/healthz")
    assert missing.status_code == 401
    assert (await missing.get_json()) == {
        "status": "unauthenticated",
        "reason": "a bearer token is required",
    }
    assert wrong.status_code == 403
    assert (await wrong.get_json())["status"] == "forbidden"
    assert good.status_code == 200
    assert health.status_code == 200


async def test_the_app_answers_503_when_certificates_are_unavailable(
    key: Key, embedded_settings: Settings, tmp_path: Path
) -> None:
    missing_file = (tmp_path / "absent.json").as_uri()
    settings = replace_settings(
        embedded_settings, auth_audience=AUDIENCE, auth_certs_url=missing_file
    )
    app = create_app(settings)
    async with app.test_app() as test_app:
        response = await test_app.test_client().post(
            "/",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key.token()}"},
            data=SCHEDULER,
        )
    assert response.status_code == 503
