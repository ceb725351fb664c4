"""A kubeconfig whose user has an oidc auth-provider, against the fake cluster.

The id-tokens are unexpired JWTs, so kubernetes-asyncio uses them as they are
and never contacts an identity provider.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import yaml
from _training_helpers import make_client

from maestro_ml_async.testing import FakeCluster


def id_token(subject: str) -> str:
    """Return an unsigned JWT that expires in an hour."""

    def part(data: dict[str, object]) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
        return raw.rstrip("=")

    claims = {"sub": subject, "exp": int(time.time()) + 3600}
    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


def write_oidc_kubeconfig(cluster: FakeCluster, path: Path, token: str) -> None:
    config = cluster.kubeconfig()
    config["users"] = [
        {
            "name": cluster.context,
            "user": {
                "auth-provider": {
                    "name": "oidc",
                    "config": {"client-id": "maestro", "id-token": token},
                }
            },
        }
    ]
    path.write_text(yaml.safe_dump(config))


async def test_oidc_token_reloaded_from_kubeconfig(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "config"
    first = id_token("first")
    cluster.rotate_token(first)
    write_oidc_kubeconfig(cluster, kubeconfig, first)
    async with make_client(cluster, kube_config_path=str(kubeconfig)) as client:
        await client.training.submit_job("oidc", "pytorch", "img")

        # The provider issued a new id-token (kubectl wrote it to the file),
        # and the API server no longer accepts the first one.
        second = id_token("second")
        cluster.rotate_token(second)
        write_oidc_kubeconfig(cluster, kubeconfig, second)
        job = await client.training.get_job("oidc")
    assert job.name == "oidc"
