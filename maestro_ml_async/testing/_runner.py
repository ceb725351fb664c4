"""Local runner: runs a fake pod's container command as a local subprocess.

With ``FakeCluster(local_runner=True)`` the simulated kubelet runs each container
that has a ``command`` on this machine instead of following a script. The image
is ignored, so the command must exist here; ``python`` and ``python3`` as the
first word run ``sys.executable``. The process gets:

* the container's ``env`` (plain values and ``valueFrom`` configMapKeyRef,
  secretKeyRef and fieldRef) and ``envFrom``, on top of a minimal base
  (``PATH`` with this interpreter's ``bin`` folder first, ``HOME``, ``LANG``,
  ``TMPDIR``), not this process's environment;
* ConfigMap, Secret and emptyDir volumes materialised in a temporary folder, and
  ``persistentVolumeClaim`` volumes mapped to ``FakeCluster(pvc_roots=)``. Every
  ``mountPath`` in the command, args, workingDir and env values is rewritten to
  the local folder.

Standard output and standard error become the container's log, and the exit
code decides the pod's phase. The process runs in its own session and its
process group is ended when the pod is deleted or the cluster stops.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ._resources import RESOURCE_TYPES
from ._store import Store

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
_CONFIGMAPS = RESOURCE_TYPES["configmaps"]
_SECRETS = RESOURCE_TYPES["secrets"]
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
_STOP_TIMEOUT = 3.0
START_ERROR_EXIT_CODE = 128
"""Exit code reported when the command cannot be started, as containerd does."""


class RunnerHost(Protocol):
    """What the runner needs from the fake cluster."""

    @property
    def store(self) -> Store: ...

    @property
    def pvc_roots(self) -> Mapping[str, str] | None: ...


class ContainerSetupError(Exception):
    """A volume or environment source of the container is missing."""


def _decode_secret(value: str) -> bytes:
    return base64.b64decode(value.encode())


def _source(
    store: Store, kind: str, namespace: str, name: str
) -> dict[str, bytes] | None:
    """Return the data of a ConfigMap or Secret as bytes, ``None`` when missing."""
    if kind == "configMap":
        obj = store.get(_CONFIGMAPS, namespace, name)
        if obj is None:
            return None
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        for key, value in (obj.get("binaryData") or {}).items():
            data[key] = _decode_secret(str(value))
        return data
    obj = store.get(_SECRETS, namespace, name)
    if obj is None:
        return None
    return {k: _decode_secret(str(v)) for k, v in (obj.get("data") or {}).items()}


def materialise_volumes(
    host: RunnerHost, pod: Obj, container: Obj, root: Path
) -> dict[str, str]:
    """Write the container's volumes under ``root`` and return mountPath -> folder.

    Raises:
        ContainerSetupError: A non-optional ConfigMap, Secret or key is missing,
            or a PVC has no local root.
    """
    namespace = pod["metadata"]["namespace"]
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        if volume is None:
            raise ContainerSetupError(f"volume {mount.get('name')!r} not found in pod")
        local = _volume_dir(host, namespace, volume, root)
        sub_path = mount.get("subPath")
        target = local / sub_path if sub_path else local
        mounts[str(mount["mountPath"]).rstrip("/") or "/"] = str(target)
    return mounts


def _volume_dir(host: RunnerHost, namespace: str, volume: Obj, root: Path) -> Path:
    name = str(volume.get("name"))
    folder = root / "volumes" / name
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"].get("claimName")
        local_root = (host.pvc_roots or {}).get(str(claim))
        if local_root is None:
            raise ContainerSetupError(
                f"persistentVolumeClaim {claim!r} has no local folder: pass "
                "pvc_roots={claim: path} to FakeCluster"
            )
        return Path(local_root)
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    for kind in ("configMap", "secret"):
        if kind in volume:
            _write_source(host.store, namespace, kind, volume[kind], folder)
    return folder


def _write_source(
    store: Store, namespace: str, kind: str, source: Obj, folder: Path
) -> None:
    source_name = str(source.get("name") or source.get("secretName") or "")
    data = _source(store, kind, namespace, source_name)
    if data is None:
        if source.get("optional"):
            return
        raise ContainerSetupError(f"{kind} {source_name!r} not found")
    default_mode = int(source.get("defaultMode", 0o644))
    items = source.get("items")
    if items is None:
        items = [{"key": key, "path": key} for key in data]
    for item in items:
        key = item.get("key")
        if key not in data:
            if source.get("optional"):
                continue
            raise ContainerSetupError(
                f"key {key!r} not found in {kind} {source_name!r}"
            )
        path = folder / str(item.get("path") or key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data[key])
        path.chmod(int(item.get("mode", default_mode)))


def map_paths(value: str, mounts: Mapping[str, str]) -> str:
    """Rewrite every mount path inside ``value`` to its local folder.

    A mount path matches only as a whole path segment, so ``/data`` rewrites
    ``/data/x`` and ``--dir=/data`` but not ``/database``.
    """
    for mount_path in sorted(mounts, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w.-]){re.escape(mount_path)}(?=/|$|[^\w.-])")
        local = mounts[mount_path].replace("\\", "\\\\")
        value = pattern.sub(local, value)
    return value


def _field_value(pod: Obj, field_path: str) -> str:
    meta = pod["metadata"]
    status = pod.get("status") or {}
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    return str(values.get(field_path) or "")


def build_env(host: RunnerHost, pod: Obj, container: Obj) -> dict[str, str]:
    """Return the process environment of ``container``, before path mapping.

    Raises:
        ContainerSetupError: A referenced ConfigMap, Secret or key is missing.
    """
    namespace = pod["metadata"]["namespace"]
    env = {key: os.environ[key] for key in _BASE_ENV if key in os.environ}
    env["PATH"] = _interpreter_path()
    env["HOSTNAME"] = pod["metadata"]["name"]
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, ref_key in (("configMap", "configMapRef"), ("secret", "secretRef")):
            ref = source.get(ref_key)
            if ref is None:
                continue
            data = _source(host.store, kind, namespace, str(ref.get("name")))
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerSetupError(f"{kind} {ref.get('name')!r} not found")
            for key, raw in data.items():
                env[prefix + key] = raw.decode(errors="replace")
    for item in container.get("env") or []:
        name = str(item.get("name"))
        if "value" in item or "valueFrom" not in item:
            env[name] = str(item.get("value", ""))
            continue
        resolved = _env_from_ref(host, pod, item["valueFrom"])
        if resolved is not None:
            env[name] = resolved
    return env


def _env_from_ref(host: RunnerHost, pod: Obj, value_from: Obj) -> str | None:
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in value_from:
        return _field_value(pod, str(value_from["fieldRef"].get("fieldPath")))
    for kind, ref_key in (("configMap", "configMapKeyRef"), ("secret", "secretKeyRef")):
        ref = value_from.get(ref_key)
        if ref is None:
            continue
        data = _source(host.store, kind, namespace, str(ref.get("name")))
        key = ref.get("key")
        if data is None or key not in data:
            if ref.get("optional"):
                return None
            raise ContainerSetupError(
                f"key {key!r} of {kind} {ref.get('name')!r} not found"
            )
        return data[key].decode(errors="replace")
    return None


def _interpreter_path() -> str:
    """Return ``PATH`` with the folder of ``sys.executable`` first.

    Tools installed next to the interpreter (``mlflow``, ``uvicorn``) are then
    found even when the virtual environment is not activated.
    """
    folder = str(Path(sys.executable).parent)
    rest = [
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != folder
    ]
    return os.pathsep.join([folder, *rest])


def _argv(
    container: Obj, mounts: Mapping[str, str], env: Mapping[str, str]
) -> list[str]:
    words = [str(w) for w in container.get("command") or []]
    words += [str(w) for w in container.get("args") or []]
    words = [_expand(map_paths(w, mounts), env) for w in words]
    if words and words[0] in ("python", "python3"):
        words[0] = sys.executable
    return words


def _expand(word: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` references as the kubelet does, with ``$$`` for ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", replace, word)


async def run_container(
    host: RunnerHost, pod: Obj, container: Obj, on_line: Callable[[str], None]
) -> int:
    """Run the container's command to its end and return its exit code.

    Setup errors (missing ConfigMap, unknown executable) are written to the log
    and give exit code 128, like a container that fails to start.
    """
    root = Path(tempfile.mkdtemp(prefix=f"fake-pod-{pod['metadata']['name']}-"))
    try:
        try:
            mounts = materialise_volumes(host, pod, container, root)
            env = build_env(host, pod, container)
        except ContainerSetupError as exc:
            on_line(f"container setup failed: {exc}")
            return START_ERROR_EXIT_CODE
        env = {key: map_paths(value, mounts) for key, value in env.items()}
        argv = _argv(container, mounts, env)
        working_dir = container.get("workingDir")
        cwd = map_paths(str(working_dir), mounts) if working_dir else str(root)
        return await run_process(argv, env=env, cwd=cwd, on_line=on_line)
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def run_process(
    argv: list[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    on_line: Callable[[str], None],
) -> int:
    """Run ``argv``, send each output line to ``on_line`` and return the exit code.

    Cancelling the coroutine ends the process group of the child.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(env),
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        on_line(f'exec: "{argv[0] if argv else ""}": {exc.strerror or exc}')
        return START_ERROR_EXIT_CODE
    logger.debug("started local process %d: %s", process.pid, argv[:1])
    try:
        assert process.stdout is not None
        async for raw in process.stdout:
            on_line(raw.decode(errors="replace").rstrip("\r\n"))
        return await process.wait()
    finally:
        if process.returncode is None:
            await stop_process(process)


async def stop_process(process: asyncio.subprocess.Process) -> None:
    """End a child started with ``start_new_session``: SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, _STOP_TIMEOUT), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), wait)
            return
        except asyncio.TimeoutError:
            continue


class ModelServerError(Exception):
    """The local model server could not start, and exited with ``exit_code``."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def resolve_storage_uri(uri: str, pvc_roots: Mapping[str, str] | None) -> Path | None:
    """Return the local folder of ``pvc://<claim>/<path>`` or ``file://`` URIs.

    Returns ``None`` for every other scheme, and for a claim without a local root.
    """
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if uri.startswith("pvc://"):
        claim, _, sub_path = uri[len("pvc://") :].partition("/")
        root = (pvc_roots or {}).get(claim)
        if root is None:
            return None
        return Path(root) / sub_path
    return None


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _answers(port: int, path: str) -> bool:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readline()
        return head.split(b" ")[1:2] == [b"200"]
    except (OSError, IndexError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class ModelServer:
    """A local MLflow scoring server for one InferenceService revision.

    MLflow's scoring server serves ``POST /invocations`` and ``GET /ping``, not
    the KServe v1 or v2 (Open Inference Protocol) paths that a real
    InferenceService serves, so clients of the fake must use MLflow's paths.
    """

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._pump: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        model_dir: Path,
        model_format: str,
        on_line: Callable[[str], None],
        *,
        timeout: float = 120.0,
    ) -> ModelServer:
        """Start ``mlflow models serve`` on ``model_dir`` and wait for ``/ping``.

        Raises:
            ModelServerError: The format is not ``mlflow``, MLflow is not
                installed, the folder has no ``MLmodel`` file, or the server exits
                or does not answer ``/ping`` within ``timeout`` seconds.
        """
        import importlib.util

        if model_format.lower() != "mlflow":
            raise ModelServerError(
                f"the local runner serves only modelFormat mlflow, not "
                f"{model_format!r}",
                1,
            )
        if importlib.util.find_spec("mlflow") is None:
            raise ModelServerError("mlflow is not installed; pip install mlflow", 1)
        if not (model_dir / "MLmodel").is_file():
            raise ModelServerError(f"no MLmodel file in {model_dir}", 1)
        port = _free_port()
        argv = [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(model_dir),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ]
        env = {**os.environ, "PATH": _interpreter_path()}
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        server = cls(process, port)
        server._pump = asyncio.create_task(server._forward(on_line))
        try:
            await server._wait_ready(timeout)
        except BaseException:
            await server.stop()
            raise
        return server

    async def _forward(self, on_line: Callable[[str], None]) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            on_line(raw.decode(errors="replace").rstrip("\r\n"))

    async def _wait_ready(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.process.returncode is not None:
                code = self.process.returncode
                raise ModelServerError(f"model server exited with code {code}", code)
            if await _answers(self.port, "/ping") or await _answers(
                self.port, "/health"
            ):
                return
            await asyncio.sleep(0.1)
        raise ModelServerError(
            f"model server did not respond to /ping within {timeout} s", 1
        )

    async def stop(self) -> None:
        """End the server's process group and its output pump."""
        if self.process.returncode is None:
            await stop_process(self.process)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
