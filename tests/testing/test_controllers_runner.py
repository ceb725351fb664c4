"""The local runner: real subprocesses behind fake pods, volumes and environment."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from _controller_host import ControllerHost, running_controllers, wait_for

from maestro_ml_async.testing._resources import RESOURCE_TYPES
from maestro_ml_async.testing._runner import map_paths, resolve_storage_uri

Obj = dict[str, Any]
PODS = RESOURCE_TYPES["pods"]
JOBS = RESOURCE_TYPES["jobs.batch"]
PJ = RESOURCE_TYPES["pytorchjobs.kubeflow.org"]


def pod(name: str, command: list[str], **container: Any) -> Obj:
    spec: Obj = {
        "restartPolicy": "Never",
        "containers": [
            {"name": "main", "image": "ignored", "command": command, **container}
        ],
    }
    return {"metadata": {"name": name}, "spec": spec}


def finished(host: ControllerHost, name: str) -> Obj | None:
    found = host.store.get(PODS, "default", name)
    if found is None or found["status"].get("phase") not in ("Succeeded", "Failed"):
        return None
    return found


def log_text(host: ControllerHost, name: str) -> list[str]:
    return [t for _, t in host.pod_logs.lines("default", name, "main")]


def test_map_paths_whole_segments() -> None:
    mounts = {"/data": "/tmp/x", "/data/deep": "/tmp/y"}
    assert map_paths("/data/file", mounts) == "/tmp/x/file"
    assert map_paths("--dir=/data", mounts) == "--dir=/tmp/x"
    assert map_paths("/database", mounts) == "/database"
    assert map_paths("/data/deep/f", mounts) == "/tmp/y/f"


def test_resolve_storage_uri(tmp_path: Path) -> None:
    roots = {"models": str(tmp_path)}
    assert resolve_storage_uri("pvc://models/a/b", roots) == tmp_path / "a" / "b"
    assert resolve_storage_uri("file:///srv/m", None) == Path("/srv/m")
    assert resolve_storage_uri("pvc://other/a", roots) is None
    assert resolve_storage_uri("s3://bucket/m", roots) is None


async def test_output_and_exit_code() -> None:
    async with running_controllers(local_runner=True) as host:
        code = (
            "import sys; print('hello', flush=True); "
            "print('oops', file=sys.stderr); sys.exit(3)"
        )
        host.store.create(PODS, pod("run", ["python", "-c", code]))
        done = await wait_for(lambda: finished(host, "run"))
        assert done["status"]["phase"] == "Failed"
        terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 3
        assert log_text(host, "run") == ["hello", "oops"]

        host.store.create(PODS, pod("ok", [sys.executable, "-c", "print('fine')"]))
        ok = await wait_for(lambda: finished(host, "ok"))
        assert ok["status"]["phase"] == "Succeeded"
        assert log_text(host, "ok") == ["fine"]


async def test_volumes_env_and_working_dir() -> None:
    async with running_controllers(local_runner=True) as host:
        host.store.create(
            RESOURCE_TYPES["configmaps"],
            {
                "metadata": {"name": "cfg"},
                "data": {"params.txt": "lr=0.1", "other": "x"},
            },
        )
        token = base64.b64encode(b"s3cr3t").decode()
        host.store.create(
            RESOURCE_TYPES["secrets"],
            {"metadata": {"name": "sec"}, "data": {"token": token}},
        )
        script = (
            "import os, stat; print(open('/etc/cfg/p.txt').read());"
            "print(os.environ['TOKEN']); print(os.environ['CFG_DIR']);"
            "print(os.getcwd() == os.environ['CFG_DIR']);"
            "print(oct(stat.S_IMODE(os.stat('/etc/cfg/p.txt').st_mode)));"
            "print(os.path.exists('/etc/cfg/other'))"
        )
        body = pod(
            "vol",
            ["python", "-c", script.replace("/etc/cfg", "$(CFG_DIR)")],
            workingDir="/etc/cfg",
            env=[
                {"name": "CFG_DIR", "value": "/etc/cfg"},
                {
                    "name": "TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "sec", "key": "token"}},
                },
            ],
            volumeMounts=[{"name": "config", "mountPath": "/etc/cfg"}],
        )
        body["spec"]["volumes"] = [
            {
                "name": "config",
                "configMap": {
                    "name": "cfg",
                    "items": [{"key": "params.txt", "path": "p.txt"}],
                    "defaultMode": 0o600,
                },
            }
        ]
        host.store.create(PODS, body)
        done = await wait_for(lambda: finished(host, "vol"))
        lines = log_text(host, "vol")
        assert done["status"]["phase"] == "Succeeded", lines
        assert lines[0] == "lr=0.1"
        assert lines[1] == "s3cr3t"
        assert not lines[2].startswith("/etc/cfg")
        assert lines[3] == "True"
        assert lines[4] == "0o600"
        assert lines[5] == "False"


async def test_missing_configmap_fails_start() -> None:
    async with running_controllers(local_runner=True) as host:
        body = pod(
            "nocm",
            ["python", "-c", "pass"],
            env=[
                {
                    "name": "X",
                    "valueFrom": {"configMapKeyRef": {"name": "none", "key": "k"}},
                }
            ],
        )
        host.store.create(PODS, body)
        done = await wait_for(lambda: finished(host, "nocm"))
        terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 128
        assert "not found" in log_text(host, "nocm")[0]


async def test_unknown_executable() -> None:
    async with running_controllers(local_runner=True) as host:
        host.store.create(PODS, pod("noexe", ["definitely-not-a-command-xyz"]))
        done = await wait_for(lambda: finished(host, "noexe"))
        assert (
            done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
            == 128
        )


async def test_delete_ends_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
        "time.sleep(60)"
    )
    async with running_controllers(local_runner=True) as host:
        host.store.create(PODS, pod("sleeper", ["python", "-c", code]))
        await wait_for(lambda: pid_file.exists() and pid_file.read_text())
        pid = int(pid_file.read_text())
        host.store.delete(PODS, "default", "sleeper")

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        await wait_for(gone, timeout=10)


async def test_training_job_exit_code_decides() -> None:
    template = {
        "spec": {
            "containers": [
                {
                    "name": "pytorch",
                    "image": "x",
                    "command": [
                        "python",
                        "-c",
                        "import os; print('rank', os.environ['RANK'])",
                    ],
                }
            ]
        }
    }
    body = {
        "metadata": {"name": "local"},
        "spec": {
            "pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": template}}
        },
    }
    async with running_controllers(local_runner=True) as host:
        host.store.create(PJ, body)

        def succeeded() -> bool:
            job = host.store.get(PJ, "default", "local")
            return any(
                c["type"] == "Succeeded" and c["status"] == "True"
                for c in ((job or {}).get("status") or {}).get("conditions") or []
            )

        await wait_for(succeeded, timeout=20)
        lines = [
            t for _, t in host.pod_logs.lines("default", "local-master-0", "pytorch")
        ]
        assert lines == ["rank 0"]


@pytest.mark.skipif(
    os.environ.get("MAESTRO_SLOW_TESTS") != "1",
    reason="starts a real MLflow model server (several seconds); "
    "set MAESTRO_SLOW_TESTS=1",
)
async def test_isvc_local_mlflow_server(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    model_dir = tmp_path / "models" / "m"
    mlflow.sklearn.save_model(model, str(model_dir))
    isvc = RESOURCE_TYPES["inferenceservices.serving.kserve.io"]
    body = {
        "metadata": {"name": "local"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "mlflow"},
                    "storageUri": "pvc://models/m",
                }
            }
        },
    }
    async with running_controllers(
        local_runner=True, pvc_roots={"models": str(tmp_path / "models")}
    ) as host:
        host.store.create(isvc, body)

        def url() -> str | None:
            obj = host.store.get(isvc, "default", "local") or {}
            for item in (obj.get("status") or {}).get("conditions") or []:
                assert not (item["type"] == "Ready" and item["status"] == "False"), item
            found = (obj.get("status") or {}).get("url", "")
            return found if found.startswith("http://127.0.0.1") else None

        base = await wait_for(url, timeout=90)
        reader, writer = await asyncio.open_connection(
            *base[len("http://") :].split(":")
        )
        payload = b'{"inputs": [[2.0]]}'
        writer.write(
            b"POST /invocations HTTP/1.0\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        response = await reader.read()
        writer.close()
        head, _, body_bytes = response.partition(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0]
        (prediction,) = json.loads(body_bytes)["predictions"]
        assert prediction == pytest.approx(2.0)
