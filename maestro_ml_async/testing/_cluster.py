"""``FakeCluster``: the fake API server, its store and controllers, as one unit."""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from ._context import ServerContext, Stats
from ._controllers import start_controllers
from ._faults import Faults
from ._kubeconfig import build_kubeconfig, generate_certificate, write_kubeconfig
from ._podlogs import PodLogs
from ._resources import RESOURCE_TYPES
from ._scripts import Scripts
from ._server import ApiServer
from ._store import Store

_log = logging.getLogger(__name__)

_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class FakeCluster:
    """A fake Kubernetes API server on 127.0.0.1, with simulated controllers.

    Use it as an async context manager. On entry it listens on a free port (or
    ``port``), writes a kubeconfig with a bearer token, and starts the
    simulated controllers. Clients connect through ``kubeconfig_path`` and
    ``context`` exactly as to a real cluster.

    Args:
        namespaces: Namespaces created at start, besides ``default``,
            ``kube-system``, ``kube-public`` and ``kube-node-lease``.
        token: Bearer token; a random one by default.
        tls: Serve https with a self-signed certificate whose CA goes into the
            kubeconfig. ``kubectl`` needs this because it sends tokens only
            over TLS. Needs the ``cryptography`` package.
        history_size: Watch events kept per resource type for resuming watches
            and continue tokens. Older resourceVersions get 410 Expired.
        watch_max_seconds: Lifetime of a watch that sets no ``timeoutSeconds``.
        bookmark_interval: Seconds between BOOKMARK events on watches that
            allow them.
        local_runner: Run pod commands as local subprocesses (see the
            controllers' documentation); the image is ignored.
        pvc_roots: Local folders that back PersistentVolumeClaims, by claim name,
            for the local runner.
        tick: Base delay, in seconds, of the simulated controllers' steps.
        port: TCP port; 0 picks a free one.
        kubeconfig_path: Where to write the kubeconfig; a temporary folder,
            removed on exit, by default.
        context: Name of the kubeconfig context, cluster and user.
        controllers: Whether to start the simulated controllers.
    """

    def __init__(
        self,
        *,
        namespaces: Iterable[str] = ("default", "ml-platform"),
        token: str | None = None,
        tls: bool = False,
        history_size: int = 1000,
        watch_max_seconds: float = 1800.0,
        bookmark_interval: float = 60.0,
        local_runner: bool = False,
        pvc_roots: Mapping[str, str] | None = None,
        tick: float = 0.05,
        port: int = 0,
        kubeconfig_path: str | Path | None = None,
        context: str = "maestro-fake",
        controllers: bool = True,
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.tls = tls
        self.local_runner = local_runner
        self.pvc_roots = pvc_roots
        self.tick = tick
        self.context = context
        self.store = Store(history_size=history_size)
        self.pod_logs = PodLogs()
        self.faults = Faults()
        self.scripts = Scripts()
        self.ca_path: str | None = None
        self.url = ""
        self.kubeconfig_path = str(kubeconfig_path) if kubeconfig_path else ""
        self._namespaces = list(dict.fromkeys((*_SYSTEM_NAMESPACES, *namespaces)))
        self._port = port
        self._start_controllers = controllers
        self._ctx = ServerContext(
            store=self.store,
            pod_logs=self.pod_logs,
            faults=self.faults,
            bookmark_interval=bookmark_interval,
            watch_max_seconds=watch_max_seconds,
        )
        self._server = ApiServer(self._ctx, self.token)
        self._runner: web.AppRunner | None = None
        self._tmpdir: str | None = None
        self._ca_pem: bytes | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"FakeCluster(url={self.url!r}, context={self.context!r})"

    @property
    def stats(self) -> Stats:
        """Request and watch counters since the start."""
        return self._ctx.stats

    @property
    def controller_tasks(self) -> list[asyncio.Task[None]]:
        """The running tasks of the simulated controllers."""
        return list(self._tasks)

    async def __aenter__(self) -> FakeCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Create the namespaces, listen, write the kubeconfig, start controllers."""
        for name in self._namespaces:
            self.store.create(
                RESOURCE_TYPES["namespaces"], {"metadata": {"name": name}}
            )
        self._tmpdir = tempfile.mkdtemp(prefix="maestro-fake-cluster-")
        ssl_context = self._ssl_context() if self.tls else None

        runner = web.AppRunner(
            self._server.build_app(),
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port, ssl_context=ssl_context)
        await site.start()
        self._runner = runner
        port = _bound_port(runner)
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{port}"
        self._ctx.server_address = f"127.0.0.1:{port}"
        if not self.kubeconfig_path:
            self.kubeconfig_path = str(Path(self._tmpdir) / "kubeconfig")
        self._write_kubeconfig()
        if self._start_controllers:
            self._tasks = start_controllers(self)
        _log.info("fake cluster listening on %s", self.url)

    async def stop(self) -> None:
        """Stop the controllers and the server, and remove temporary files."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._ctx.stop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        _log.info("fake cluster stopped")

    def expire_token(self) -> None:
        """Reject every request with 401 until ``rotate_token`` is called."""
        self._server.token_valid = False

    def rotate_token(self, new_token: str | None = None) -> str:
        """Switch to a new token, rewrite the kubeconfig and return the token."""
        self.token = new_token or secrets.token_urlsafe(24)
        self._server.token = self.token
        self._server.token_valid = True
        if self.url:
            self._write_kubeconfig()
        return self.token

    def expire_continue_tokens(self) -> None:
        """Make every continue token issued so far get 410 Expired."""
        self._ctx.continue_floor = self.store.resource_version + 1

    def kubeconfig(self) -> dict[str, Any]:
        """Return the kubeconfig contents as a dict."""
        return build_kubeconfig(
            server=self.url, token=self.token, context=self.context, ca_pem=self._ca_pem
        )

    def _write_kubeconfig(self) -> None:
        write_kubeconfig(self.kubeconfig_path, self.kubeconfig())

    def _ssl_context(self) -> ssl.SSLContext:
        assert self._tmpdir is not None
        cert_pem, key_pem = generate_certificate()
        cert_path = Path(self._tmpdir) / "server.crt"
        key_path = Path(self._tmpdir) / "server.key"
        cert_path.write_bytes(cert_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        self._ca_pem = cert_pem
        self.ca_path = str(cert_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        return context


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the fake API server is not listening on a TCP port")
