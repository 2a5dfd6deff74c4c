"""Optional check of the Google-signed OIDC token that Pub/Sub push and Eventarc send.

When ``INGEST_AUTH_AUDIENCE`` is set, every ``POST /`` must carry ``Authorization: Bearer JWT``
signed by one of the keys published at ``INGEST_AUTH_CERTS_URL`` (Google's v1 endpoint: a JSON
object of key id -> PEM certificate; ``file://`` paths and local URLs serve tests), issued by
Google, for that audience, and (when ``INGEST_AUTH_ALLOWED_EMAILS`` is set) for one of those
verified service-account emails.

google-auth is imported here and nowhere else outside the GCP adapters: it is a token library,
not a cloud client, and the check belongs to the HTTP edge. Only its pure JWT verification is
used; the certificates are fetched here, off the event loop, and cached, so a request never
waits on Google's certificate endpoint except after a key rotation or the cache's max-age.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from google.auth import jwt

from service.errors import ConfigError, IngestError, TransientError
from service.settings import Settings

# Issuers of Google-signed ID tokens (both spellings occur).
ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
CLOCK_SKEW_SECONDS = 30
FETCH_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_AGE_SECONDS = 300.0
# google-auth's JWT functions carry no annotations; these are their types as documented.
decode_header: Callable[[str], Mapping[str, Any]] = jwt.decode_header
decode_jwt: Callable[..., Mapping[str, Any]] = jwt.decode
# An unknown key id triggers a refetch (key rotation), but not more often than this.
MIN_REFETCH_SECONDS = 30.0
MAX_AGE = re.compile(r"max-age=(\d+)")


class AuthError(IngestError):
    """The request is not authenticated (401) or not allowed (403); reason is a fixed phrase."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """Who signed the token (what the log records about the caller)."""

    email: str | None
    subject: str | None


# (certificates, max-age in seconds or None) from a certs URL.
Fetch = Callable[[str], tuple[dict[str, str], float | None]]


def fetch_certs(url: str) -> tuple[dict[str, str], float | None]:
    """Blocking read of a certs document from ``file://`` or ``http(s)://``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return _certs_document(Path(unquote(parsed.path)).read_bytes()), None
    # No proxy: the certs endpoint is reached directly (and tests serve it on 127.0.0.1).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
        found = MAX_AGE.search(response.headers.get("Cache-Control", ""))
        body = response.read()
    return _certs_document(body), float(found.group(1)) if found else None


def _certs_document(raw: bytes) -> dict[str, str]:
    document = json.loads(raw)
    if not isinstance(document, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in document.items()
    ):
        raise ValueError("not a JSON object of key id -> PEM certificate")
    return document


class CertificateCache:
    """Google's signing certificates, fetched in a thread and kept for their max-age."""

    def __init__(
        self,
        url: str,
        fetch: Fetch = fetch_certs,
        *,
        min_refetch_seconds: float = MIN_REFETCH_SECONDS,
    ) -> None:
        if urlparse(url).scheme not in ("file", "http", "https"):
            raise ConfigError("INGEST_AUTH_CERTS_URL must be a file://, http:// or https:// URL")
        self.url = url
        self._fetch = fetch
        self._min_refetch = min_refetch_seconds
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = float("-inf")
        # The fetch under way, if any: every request that needs fresh certificates awaits this
        # one, so a hanging endpoint costs them all one fetch timeout, not one each in a queue.
        self._refreshing: asyncio.Task[None] | None = None

    async def get(self, key_id: str | None) -> dict[str, str]:
        """The certificates, refreshed when stale or when ``key_id`` is new to us."""
        if self._fresh(key_id):
            return self._certs
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh())
            self._refreshing.add_done_callback(self._refreshed)
        # Shielded: a waiter that is cancelled (its client left) does not cancel the others' fetch.
        await asyncio.shield(self._refreshing)
        return self._certs

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        if self._refreshing is task:
            self._refreshing = None

    def _fresh(self, key_id: str | None) -> bool:
        now = time.monotonic()
        if now >= self._expires:
            return False
        known = key_id is None or key_id in self._certs
        return known or now - self._fetched < self._min_refetch

    async def _refresh(self) -> None:
        try:
            certs, max_age = await asyncio.to_thread(self._fetch, self.url)
        except (OSError, ValueError) as exc:
            if self._certs:
                # Keep serving with the certificates we have; try again a little later.
                self._expires = time.monotonic() + self._min_refetch
                return
            raise TransientError(f"signing certificates unavailable: {type(exc).__name__}") from exc
        now = time.monotonic()
        self._certs = certs
        self._fetched = now
        self._expires = now + (max_age if max_age is not None else DEFAULT_MAX_AGE_SECONDS)


class TokenVerifier:
    def __init__(
        self, audience: str, allowed_emails: tuple[str, ...], certs: CertificateCache
    ) -> None:
        self.audience = audience
        self.allowed_emails = frozenset(e.lower() for e in allowed_emails)
        self.certs = certs

    @classmethod
    def from_settings(cls, settings: Settings, fetch: Fetch = fetch_certs) -> TokenVerifier | None:
        """The verifier the settings ask for, or None when authentication is off."""
        if not settings.auth_audience:
            if settings.auth_allowed_emails:
                raise ConfigError("INGEST_AUTH_ALLOWED_EMAILS needs INGEST_AUTH_AUDIENCE")
            return None
        cache = CertificateCache(settings.auth_certs_url, fetch)
        return cls(settings.auth_audience, settings.auth_allowed_emails, cache)

    async def verify(self, authorization: str | None) -> Identity:
        """The caller's identity; AuthError (401/403) or TransientError (certs unavailable)."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "a bearer token is required")
        token = token.strip()
        certs = await self.certs.get(_key_id(token))
        claims = _verified_claims(token, certs)
        if claims.get("iss") not in ISSUERS:
            raise AuthError(401, "the token was not issued by Google")
        if claims.get("aud") != self.audience:
            raise AuthError(403, "the token is for another audience")
        email = claims.get("email")
        if self.allowed_emails and not (
            isinstance(email, str)
            and email.lower() in self.allowed_emails
            and claims.get("email_verified") is True
        ):
            raise AuthError(403, "the caller is not allowed")
        subject = claims.get("sub")
        return Identity(
            email if isinstance(email, str) else None,
            subject if isinstance(subject, str) else None,
        )


def _key_id(token: str) -> str | None:
    try:
        header = decode_header(token)
    except Exception as exc:  # anything the token parser raises means "not a token"
        raise AuthError(401, "the bearer token is malformed") from exc
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def _verified_claims(token: str, certs: Mapping[str, str]) -> Mapping[str, Any]:
    try:
        # Signature, iat and exp (nbf below); the caller checks the audience (401 versus 403).
        claims = decode_jwt(token, certs=certs, clock_skew_in_seconds=CLOCK_SKEW_SECONDS)
    except Exception as exc:  # a token that fails in any way to verify is unauthenticated
        raise AuthError(401, "the bearer token is invalid or expired") from exc
    if not isinstance(claims, Mapping) or not _valid_yet(claims.get("nbf", 0)):
        raise AuthError(401, "the bearer token is invalid or expired")
    return claims


def _valid_yet(not_before: object) -> bool:
    """``nbf`` (google-auth checks only iat and exp), with the same leeway as for ``iat``."""
    if isinstance(not_before, bool) or not isinstance(not_before, int | float):
        return False
    return time.time() >= not_before - CLOCK_SKEW_SECONDS
