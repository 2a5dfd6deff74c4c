"""Google credentials: found before any client is made, or one line saying how to provide them.

Each client looks for Application Default Credentials when it is made; without any, Google's
SDK raises ``DefaultCredentialsError`` with a paragraph of text. Here that is a ConfigError
that says what to do, raised before the server starts or a command opens its backends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import google.auth
from google.auth.exceptions import DefaultCredentialsError

from service.errors import ConfigError

if TYPE_CHECKING:
    from service.settings import Settings

NO_CREDENTIALS = (
    "no Google credentials found: run `gcloud auth application-default login`, or set"
    " GOOGLE_APPLICATION_CREDENTIALS to a service account key file (on Cloud Run the service's"
    " own account is used); or use the embedded backend (--embedded, INGEST_BACKEND=embedded)"
)


@contextlib.contextmanager
def needing_credentials() -> Iterator[None]:
    """Around a client's construction: no credentials is a ConfigError saying how to get some."""
    try:
        yield
    except DefaultCredentialsError as exc:
        raise ConfigError(NO_CREDENTIALS) from exc


def needs_credentials(settings: Settings) -> bool:
    """Whether any client of the backends authenticates (an emulator's client does not)."""
    return not (
        settings.storage_emulator_host
        and settings.bigquery_endpoint
        and settings.firestore_emulator_host
    )


def find_credentials(settings: Settings) -> str:
    """Who the clients will act as, in words; ConfigError when there are no credentials.

    ``google.auth.default`` reads GOOGLE_APPLICATION_CREDENTIALS, then gcloud's application
    default file, then asks the metadata server (on Google Cloud only): no API call is made.
    """
    if not needs_credentials(settings):
        return "none needed (emulators)"
    # Its warning that the metadata server is unavailable would precede our one line.
    quiet = logging.getLogger("google.auth._default")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with needing_credentials():
            credentials, _ = google.auth.default()
    finally:
        quiet.setLevel(level)
    return describe(credentials)


def describe(credentials: Any) -> str:
    email = getattr(credentials, "service_account_email", None)
    if email and email != "default":
        return f"service account {email}"
    if "compute_engine" in type(credentials).__module__:
        return "the attached service account (metadata server)"
    return f"application default credentials ({type(credentials).__name__})"
