"""Kubeconfig files and self-signed TLS certificates for the fake cluster."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
from pathlib import Path
from typing import Any


def build_kubeconfig(
    *, server: str, token: str, context: str, ca_pem: bytes | None = None
) -> dict[str, object]:
    """Return a kubeconfig with one cluster, one token user and one context.

    Args:
        server: API server URL, such as ``https://127.0.0.1:41234``.
        token: Bearer token of the user.
        context: Name used for the cluster, the user and the context.
        ca_pem: PEM certificate that signs the server's certificate, if TLS.
    """
    cluster: dict[str, object] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {
                    "cluster": context,
                    "user": context,
                    "namespace": "default",
                },
            }
        ],
        "current-context": context,
    }


def write_kubeconfig(path: str | Path, config: dict[str, object]) -> None:
    """Write a kubeconfig as JSON (which is valid YAML), readable by the owner only.

    The file is replaced atomically, so a client that rereads it after a token
    rotation never reads half a file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    os.replace(temporary, target)


def _key_usage(x509: Any) -> Any:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def generate_certificate(host: str = "127.0.0.1") -> tuple[bytes, bytes]:
    """Generate a self-signed server certificate for ``host``.

    The certificate is its own CA, with ``host`` as an IP SAN (and
    ``localhost`` as a DNS SAN), valid for one day. It needs the
    ``cryptography`` package, which is imported only here.

    Returns:
        The certificate and its private key, both PEM encoded.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "maestro-fake-apiserver")]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(alt_names, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(x509), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem
