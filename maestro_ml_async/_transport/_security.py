"""Authentication and TLS settings of the MLflow HTTP client."""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Generator

import httpx

from .._config import MLFLOW_FALLBACKS, Config
from .._exceptions import ConfigurationException

__all__ = ["CA_BUNDLE_VARIABLES", "build_auth", "build_ssl_context"]


class _BearerAuth(httpx.Auth):
    """Bearer-token auth whose repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(token=**********)"


class _BasicAuth(httpx.Auth):
    """Basic auth whose repr never shows the password."""

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode("ascii")
        self._username = username

    def auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return f"_BasicAuth(username={self._username!r}, password=**********)"


def build_auth(config: Config) -> httpx.Auth | None:
    """Pick the auth of a configuration: basic when a user and password are set
    (MLflow's own client checks them first), else bearer, else none."""
    if config.username and config.password is not None:
        return _BasicAuth(config.username, config.password.get_secret_value())
    # An empty token means none: sending "Bearer " would fail on every server.
    if config.api_key is not None and config.api_key.get_secret_value():
        return _BearerAuth(config.api_key.get_secret_value())
    return None


# MLflow's client sends its requests through `requests`, which trusts the
# bundle these name when no certificate path is configured, so a setup that
# relies on them keeps working here. Each may name a file or a folder.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def build_ssl_context(config: Config) -> ssl.SSLContext | bool:
    """Return the TLS settings: verification is on unless switched off.

    The CA bundle is `ca_cert_path`; else, for an https server, the first of
    ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` that is set; else the
    system's trust store.
    """
    if not config.verify_ssl:
        return False
    field, path = "ca_cert_path", config.ca_cert_path
    if path is None and _uses_https(config):
        field, path = _ca_bundle_from_env(field)
    folder = path is not None and os.path.isdir(path)
    try:
        context = ssl.create_default_context(
            cafile=None if folder else path, capath=path if folder else None
        )
    except OSError as exc:
        raise _certificate_error(field, path, exc) from None
    if config.client_cert_path:
        try:
            context.load_cert_chain(config.client_cert_path)
        except OSError as exc:
            path = config.client_cert_path
            raise _certificate_error("client_cert_path", path, exc) from None
    return context


def _uses_https(config: Config) -> bool:
    uris = (config.mlflow_uri, config.registry_uri)
    return any(uri.lower().startswith("https:") for uri in uris)


def _ca_bundle_from_env(field: str) -> tuple[str, str | None]:
    """Return the first CA bundle variable that is set, with its value."""
    for name in CA_BUNDLE_VARIABLES:
        value = os.environ.get(name)
        if value:
            return name, value
    return field, None


def _certificate_error(
    field: str, path: str | None, exc: OSError
) -> ConfigurationException:
    # ssl.SSLError is an OSError, so a missing file and a file that is not PEM
    # both end here.
    if field in CA_BUNDLE_VARIABLES:
        source = f"set by {field}"
    else:
        variables = f"MAESTRO_ML_{field.upper()} or {MLFLOW_FALLBACKS[field]}"
        source = f"set by the argument, {variables}"
    return ConfigurationException(
        f"could not load {field} {path!r} ({source}): "
        f"{exc.strerror or exc}; point it at a readable PEM file"
    )
