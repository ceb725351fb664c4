"""TLS trust from the CA bundle variables that MLflow's own client honours.

The server in these tests is a local HTTPS server whose certificate comes from
a throwaway CA, as for an MLflow server behind a private CA.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from maestro_ml_async import (
    AsyncMaestroClient,
    ConfigurationException,
    MaestroMLException,
)

BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


@dataclass
class TlsServer:
    url: str
    ca_file: Path
    ca_pem: bytes


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        address = ipaddress.ip_address("127.0.0.1")
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(address)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {"registered_model": {"name": "tls-model", "creation_timestamp": 1}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("maestro test CA", ca_key, None, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate(
        "127.0.0.1", server_key, ca_cert.subject, ca_key, ca=False
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_pem)
    chain = folder / "server.pem"
    chain.write_bytes(
        server_cert.public_bytes(serialization.Encoding.PEM)
        + server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield TlsServer(f"https://127.0.0.1:{port}", ca_file, ca_pem)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_bundle_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in BUNDLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def _model_name(url: str, **settings: object) -> str:
    async with AsyncMaestroClient(mlflow_uri=url, max_retries=0, **settings) as client:
        return (await client.models.get("tls-model")).name


async def test_private_ca_is_refused_without_a_bundle(tls_server: TlsServer) -> None:
    with pytest.raises(MaestroMLException, match=r"(?i)certificate"):
        await _model_name(tls_server.url)


@pytest.mark.parametrize("variable", BUNDLE_VARIABLES)
async def test_bundle_variable_is_trusted(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, str(tls_server.ca_file))

    assert await _model_name(tls_server.url) == "tls-model"


async def test_requests_bundle_comes_before_curl_bundle(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_server.ca_file))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "missing.pem"))

    assert await _model_name(tls_server.url) == "tls-model"


async def test_configured_path_comes_before_bundle_variables(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))

    name = await _model_name(tls_server.url, ca_cert_path=str(tls_server.ca_file))

    assert name == "tls-model"


@pytest.fixture
def hashed_ca_folder(tls_server: TlsServer, tmp_path: Path) -> Path:
    """Return a folder that contains the CA under its OpenSSL subject-hash name."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to name a certificate by its subject hash")
    found = subprocess.run(
        [openssl, "x509", "-noout", "-subject_hash"],
        input=tls_server.ca_pem,
        capture_output=True,
        check=True,
    )
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / f"{found.stdout.decode().strip()}.0").write_bytes(tls_server.ca_pem)
    return folder


async def test_bundle_folder_is_trusted(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch, hashed_ca_folder: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(hashed_ca_folder))

    assert await _model_name(tls_server.url) == "tls-model"


async def test_unreadable_bundle_names_its_variable(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pem"
    monkeypatch.setenv("CURL_CA_BUNDLE", str(missing))

    with pytest.raises(ConfigurationException) as caught:
        await _model_name(tls_server.url)

    assert "CURL_CA_BUNDLE" in str(caught.value)
    assert str(missing) in str(caught.value)


async def test_bundle_variable_is_ignored_for_plain_http(
    mlflow_server_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `requests` reads the bundle only for https, so a stale variable must not
    # break a plain-HTTP server.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))

    async with AsyncMaestroClient(mlflow_uri=mlflow_server_url) as client:
        models = [model async for model in client.models.list(max_results=1)]

    assert isinstance(models, list)


async def test_verification_off_ignores_bundle_variables(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))

    assert await _model_name(tls_server.url, verify_ssl=False) == "tls-model"


async def test_secret_keywords_stay_hidden() -> None:
    client = AsyncMaestroClient(
        mlflow_uri="https://127.0.0.1:1",
        username="alice",
        password="pw-hidden-7",
        client_cert_path=None,
        verbose=True,
    )

    assert client.config.username == "alice"
    assert client.config.password is not None
    assert client.config.password.get_secret_value() == "pw-hidden-7"
    assert client.config.verbose is True
    assert "pw-hidden-7" not in repr(client) + repr(client.config)
    await client.aclose()
