"""Credentials for the cluster transport: kubeconfig, exec plugins, in-cluster.

kubernetes-asyncio loads a kubeconfig once and never refreshes it on its own, and
a copied ``Configuration`` loses the refresh hook. So the transport builds one
fresh ``Configuration`` per client and installs a `ClusterAuth` as its
``refresh_api_key_hook``, which runs before every request:

- an exec plugin is run again shortly before its ``expirationTimestamp``;
- a token file (kubeconfig ``tokenFile`` or the service-account token) is read
  again when its modification time or size changes;
- a token written into the kubeconfig itself is loaded again from the file when
  the kubeconfig changes, which is how tools rotate such tokens;
- after a 401 the transport calls `ClusterAuth.refresh` with ``force=True``.

The token is kept in the configuration's ``api_key`` and never logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._config import Config
from .._exceptions import ConfigurationException, KubernetesAuthException

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "ClusterAuth",
    "InClusterPaths",
    "load_configuration",
]

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# An exec credential is renewed when less than this share of its lifetime, and
# at most `_MAX_EXPIRY_SKEW`, is left.
_EXPIRY_SKEW_SHARE = 0.2
_MAX_EXPIRY_SKEW = dt.timedelta(seconds=60)
_BEARER = "BearerToken"
# Requests that fail with 401 together share the refresh that the first of them
# ran, instead of each running the exec plugin again.
_REFRESH_SHARE_SECONDS = 1.0


@dataclass(frozen=True)
class InClusterPaths:
    """Where the in-cluster service-account files and variables come from."""

    token_path: str = f"{SERVICE_ACCOUNT_DIR}/token"
    ca_path: str = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
    namespace_path: str = f"{SERVICE_ACCOUNT_DIR}/namespace"
    environ: Any = None  # a mapping; None means os.environ


class ClusterAuth:
    """Keeps the bearer token of one ``Configuration`` current.

    Args:
        exec_config: The kubeconfig ``exec`` section, when an exec plugin supplies
            the token.
        token_path: A file that contains the token (kubeconfig ``tokenFile`` or
            the service-account token), read again when it changes.
        kubeconfig: A kubeconfig path (or several joined by `os.pathsep`, as in
            ``$KUBECONFIG``) and a context whose user has a static token; the
            token is loaded again when `user_file` changes.
        user_file: The kubeconfig file that contains the user's section; the
            first path of `kubeconfig` by default.
        expiry: Expiry time of the current exec credential, if the plugin set one.
    """

    def __init__(
        self,
        *,
        exec_config: Any = None,
        token_path: str | None = None,
        kubeconfig: tuple[str, str | None] | None = None,
        user_file: str | None = None,
        expiry: dt.datetime | None = None,
    ) -> None:
        self._exec_config = exec_config
        self._kubeconfig = kubeconfig
        if kubeconfig is not None and user_file is None:
            user_file = kubeconfig[0].split(os.pathsep)[0]
        # The file whose changes trigger a refresh: the token file or the kubeconfig.
        self._watched_path = token_path or user_file
        self._expiry = expiry
        self._issued = dt.datetime.now(dt.timezone.utc)
        self._file_stamp: tuple[int, int] | None = None
        self._lock = asyncio.Lock()
        self._last_refresh = -_REFRESH_SHARE_SECONDS
        self.refresh_count = 0

    @property
    def refreshable(self) -> bool:
        """Whether a refresh can produce a different credential."""
        return self._exec_config is not None or self._watched_path is not None

    async def __call__(self, configuration: Any) -> None:
        """Refresh the token when it is about to expire or its file changed."""
        if self._exec_config is not None and self._exec_due():
            await self.refresh(configuration, force=True)
        elif self._watched_path is not None and self._file_changed():
            await self.refresh(configuration, force=True)

    async def refresh(self, configuration: Any, *, force: bool = False) -> bool:
        """Fetch a new token; return True when it differs from the old one."""
        if not force or not self.refreshable:
            return False
        requested = time.monotonic()
        async with self._lock:
            if self._last_refresh > requested - _REFRESH_SHARE_SECONDS:
                return True
            before = configuration.api_key.get(_BEARER)
            if self._exec_config is not None:
                token = await self._run_exec_plugin()
            elif self._kubeconfig is not None:
                token = await self._reload_kubeconfig_token()
            else:
                token = self._read_token_file()
            if token is None:
                return False
            configuration.api_key[_BEARER] = token
            self._last_refresh = time.monotonic()
            self.refresh_count += 1
            changed: bool = token != before
            logger.info(
                "refreshed the cluster credential (%s)",
                "changed" if changed else "unchanged",
            )
            return changed

    def _exec_due(self) -> bool:
        if self._expiry is None:
            return False
        now = dt.datetime.now(dt.timezone.utc)
        lifetime = max(self._expiry - self._issued, dt.timedelta(0))
        skew = min(_MAX_EXPIRY_SKEW, lifetime * _EXPIRY_SKEW_SHARE)
        return now >= self._expiry - skew

    def _file_changed(self) -> bool:
        assert self._watched_path is not None
        try:
            info = os.stat(self._watched_path)
        except OSError:
            return False
        return (info.st_mtime_ns, info.st_size) != self._file_stamp

    def _read_token_file(self) -> str | None:
        assert self._watched_path is not None
        path = Path(self._watched_path)
        try:
            info = path.stat()
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            logger.warning("cannot read the token file %s: %s", path, exc)
            return None
        self._file_stamp = (info.st_mtime_ns, info.st_size)
        if not token:
            logger.warning("the token file %s is empty", path)
            return None
        return f"Bearer {token}"

    async def _reload_kubeconfig_token(self) -> str | None:
        from kubernetes_asyncio.client import Configuration
        from kubernetes_asyncio.config import load_kube_config
        from kubernetes_asyncio.config.config_exception import ConfigException

        assert self._kubeconfig is not None
        path, context = self._kubeconfig
        self.mark_file_read()
        scratch = type.__call__(Configuration)
        try:
            await load_kube_config(
                config_file=path,
                context=context,
                client_configuration=scratch,
                persist_config=False,
            )
        except (ConfigException, OSError, KeyError, TypeError, ValueError) as exc:
            logger.warning("cannot reload the kubeconfig %s: %s", path, exc)
            return None
        token = scratch.api_key.get(_BEARER)
        return str(token) if token else None

    async def _run_exec_plugin(self) -> str | None:
        from kubernetes_asyncio.config.config_exception import ConfigException
        from kubernetes_asyncio.config.dateutil import parse_rfc3339
        from kubernetes_asyncio.config.exec_provider import ExecProvider

        try:
            status = await ExecProvider(self._exec_config).run()
        except ConfigException as exc:
            raise KubernetesAuthException(
                f"the kubeconfig exec plugin failed: {exc}"
            ) from None
        token = status.get("token")
        if not token:
            # NOTE: plugins that return a client certificate instead of a token
            # are used as loaded at start; their certificates are not renewed.
            logger.warning("the exec plugin returned no token")
            return None
        self._issued = dt.datetime.now(dt.timezone.utc)
        expiry = status.get("expirationTimestamp")
        self._expiry = parse_rfc3339(expiry) if expiry else None
        return f"Bearer {token}"

    def mark_file_read(self) -> None:
        """Record the token file's current state as already loaded."""
        if self._watched_path is not None and os.path.exists(self._watched_path):
            info = os.stat(self._watched_path)
            self._file_stamp = (info.st_mtime_ns, info.st_size)


async def load_configuration(
    config: Config, in_cluster: InClusterPaths | None = None
) -> tuple[Any, ClusterAuth, str | None]:
    """Build a fresh kubernetes-asyncio ``Configuration`` for `config`.

    The kubeconfig named by `config.kube_config_path`, else the files listed in
    ``$KUBECONFIG`` (merged as kubectl merges them), else ``~/.kube/config`` is
    used when it exists; otherwise the in-cluster service-account
    configuration. The global default configuration is never read or changed.

    Returns:
        The configuration, its `ClusterAuth` (already installed as the refresh
        hook), and the namespace the credentials came with (kubeconfig context
        namespace or the service account's), if any.

    Raises:
        ConfigurationException: No usable cluster configuration was found.
    """
    from kubernetes_asyncio.client import Configuration

    configuration = type.__call__(Configuration)
    path = _kubeconfig_path(config)
    if path is not None:
        auth, namespace = await _load_kubeconfig(configuration, path, config)
    else:
        auth, namespace = _load_in_cluster(
            configuration, in_cluster or InClusterPaths()
        )
    # TLS settings come from the kubeconfig (certificate-authority,
    # insecure-skip-tls-verify); the SDK's verify_ssl applies to MLflow only.
    configuration.refresh_api_key_hook = auth
    return configuration, auth, namespace


def _kubeconfig_path(config: Config) -> str | None:
    if config.kube_config_path:
        path = os.path.expanduser(config.kube_config_path)
        if not os.path.isfile(path):
            raise ConfigurationException(
                f"kube_config_path {config.kube_config_path!r} does not exist; "
                "point it at a kubeconfig file or leave it unset"
            )
        return path
    # kubectl merges every file that $KUBECONFIG lists and skips missing ones.
    # kubernetes-asyncio merges a list joined with os.pathsep the same way.
    candidates = os.environ.get("KUBECONFIG") or "~/.kube/config"
    found = []
    for candidate in candidates.split(os.pathsep):
        expanded = os.path.expanduser(candidate)
        if candidate and os.path.isfile(expanded) and expanded not in found:
            found.append(expanded)
    return os.pathsep.join(found) if found else None


def _first_current_context(paths: str) -> str | None:
    """Return the current-context of the first file that sets one, as kubectl does.

    kubernetes-asyncio 36 lets the last file that sets it win instead.
    """
    import yaml

    for path in paths.split(os.pathsep):
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
        context = data.get("current-context") if isinstance(data, dict) else None
        if context:
            return str(context)
    return None


async def _load_kubeconfig(
    configuration: Any, path: str, config: Config
) -> tuple[ClusterAuth, str | None]:
    import yaml
    from kubernetes_asyncio.config import load_kube_config
    from kubernetes_asyncio.config.config_exception import ConfigException

    context_name = config.kube_context
    try:
        if context_name is None and os.pathsep in path:
            context_name = _first_current_context(path)
        loader = await load_kube_config(
            config_file=path,
            context=context_name,
            client_configuration=configuration,
            persist_config=False,
        )
    except (
        ConfigException,
        KeyError,
        TypeError,
        ValueError,
        OSError,
        yaml.YAMLError,
    ) as exc:
        raise ConfigurationException(
            f"cannot load the kubeconfig {path!r}"
            f"{f' (context {context_name!r})' if context_name else ''}"
            f": {exc}"
        ) from None
    # The loader keeps the selected user section in a private attribute; it is
    # the only place that has the exec section and tokenFile after loading.
    user = getattr(loader, "_user", None)
    context = loader.current_context or {}
    namespace = (context.get("context") or {}).get("namespace")
    # A merged user section records the file it came from, and its relative
    # paths (tokenFile) are relative to that file.
    user_file = str(getattr(user, "path", None) or path.split(os.pathsep)[0])
    if user is not None and "exec" in user:
        auth = ClusterAuth(
            exec_config=user["exec"], expiry=getattr(loader, "exec_plugin_expiry", None)
        )
    elif user is not None and user.safe_get("tokenFile"):
        token_path = os.path.join(os.path.dirname(user_file), str(user["tokenFile"]))
        auth = ClusterAuth(token_path=token_path)
        auth.mark_file_read()
    elif user is not None and (user.safe_get("token") or "auth-provider" in user):
        # An oidc or gcp auth-provider token is short-lived (often an hour).
        # Loading the kubeconfig again takes a token that another tool wrote
        # there, or refreshes an expired one with the provider's refresh token.
        auth = ClusterAuth(kubeconfig=(path, context_name), user_file=user_file)
        auth.mark_file_read()
    else:
        auth = ClusterAuth()
    return auth, namespace


def _load_in_cluster(
    configuration: Any, paths: InClusterPaths
) -> tuple[ClusterAuth, str | None]:
    environ = paths.environ if paths.environ is not None else os.environ
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not os.path.isfile(paths.token_path):
        raise ConfigurationException(
            "no cluster configuration found: set kube_config_path (or $KUBECONFIG), "
            "create ~/.kube/config, or run inside a pod with a service account"
        )
    if ":" in host:
        host = f"[{host}]"
    configuration.host = f"https://{host}:{port}"
    if os.path.isfile(paths.ca_path):
        configuration.ssl_ca_cert = paths.ca_path
    auth = ClusterAuth(token_path=paths.token_path)
    token = auth._read_token_file()
    if token is None:
        raise ConfigurationException(
            f"the service-account token file {paths.token_path} is empty"
        )
    configuration.api_key[_BEARER] = token
    namespace = None
    if os.path.isfile(paths.namespace_path):
        namespace = Path(paths.namespace_path).read_text(encoding="utf-8").strip()
    return auth, namespace or None
