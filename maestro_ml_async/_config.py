"""Configuration of the SDK, read from arguments, the environment and `.env` files.

Precedence, highest first: an explicit argument, a ``MAESTRO_ML_*`` variable, the
MLflow variable that means the same thing (``MLFLOW_TRACKING_URI`` and friends),
then the default. So an existing MLflow setup works unchanged.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from dotenv import dotenv_values
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from ._exceptions import ConfigurationException

__all__ = ["ENV_PREFIX", "MLFLOW_FALLBACKS", "Config"]

ENV_PREFIX = "MAESTRO_ML_"

# Picked from runs of benchmarks/mlflow_bulk.py, recorded in docs/benchmarks.md.
# Every new connection costs a TCP (and TLS) handshake, so lower values cost more.
DEFAULT_REQUESTS_PER_CONNECTION = 20

# MLflow's own variables, used when the MAESTRO_ML_* twin is unset. The insecure
# TLS flag is inverted on the way in because our field is `verify_ssl`.
MLFLOW_FALLBACKS: dict[str, str] = {
    "mlflow_uri": "MLFLOW_TRACKING_URI",
    "mlflow_registry_uri": "MLFLOW_REGISTRY_URI",
    "api_key": "MLFLOW_TRACKING_TOKEN",
    "username": "MLFLOW_TRACKING_USERNAME",
    "password": "MLFLOW_TRACKING_PASSWORD",
    "verify_ssl": "MLFLOW_TRACKING_INSECURE_TLS",
    "ca_cert_path": "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "client_cert_path": "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "experiment_name": "MLFLOW_EXPERIMENT_NAME",
}

_SECRET_FIELDS = frozenset({"api_key", "password"})
_URL_FIELDS = ("mlflow_uri", "mlflow_registry_uri", "api_url")
_FLOAT_FIELDS = (
    "request_timeout",
    "training_job_timeout",
    "retry_backoff_base",
    "retry_backoff_max",
    "retry_max_elapsed",
)
_SETTINGS_ERROR_FIELD = re.compile(r'field "(\w+)"')
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


class _MlflowFallbackSource(PydanticBaseSettingsSource):
    """Reads MLflow's variables from the environment and the `.env` file."""

    def __init__(
        self, settings_cls: type[BaseSettings], env_file: str | Path | None
    ) -> None:
        super().__init__(settings_cls)
        # MLflow treats an empty variable as unset, so an empty value in the
        # environment does not hide the `.env` file's value either.
        self._values: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            self._values.update(_non_empty(_read_dotenv(Path(env_file))))
        self._values.update(_non_empty(os.environ))

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        variable = MLFLOW_FALLBACKS.get(field_name)
        if variable is None or variable not in self._values:
            return None, field_name, False
        return self._values[variable], field_name, False

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for field_name, variable in MLFLOW_FALLBACKS.items():
            raw = self._values.get(variable)
            if raw is None:
                continue
            if field_name == "verify_ssl":
                data[field_name] = _invert_flag(variable, raw)
            else:
                data[field_name] = raw
        return data


class _FieldsOnlySource(PydanticBaseSettingsSource):
    """Keeps only the settings fields from another source.

    pydantic-settings turns every other key of a `.env` file into an extra
    input, which ``extra="forbid"`` rejects, so a file that also holds MLflow's
    own variables (or anything else) would fail to load.
    """

    def __init__(
        self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        self._inner = inner

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        return {key: value for key, value in self._inner().items() if key in fields}


def _non_empty(values: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in values.items() if value}


def _read_dotenv(path: Path) -> dict[str, str]:
    # python-dotenv is the parser pydantic-settings uses for the MAESTRO_ML_*
    # keys of the same file, so both kinds of keys follow the same syntax.
    return {
        key: value
        for key, value in dotenv_values(path, encoding="utf-8").items()
        if value is not None
    }


def _invert_flag(variable: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE_WORDS:
        return False
    if word in _FALSE_WORDS:
        return True
    raise ConfigurationException(
        f"{variable} must be true or false, got {raw!r}; unset it or set it to 'true'"
    )


class Config(BaseSettings):
    """Settings of an `AsyncMaestroClient`.

    Each field can be given as an argument, or read from ``MAESTRO_ML_<FIELD>``
    (for example ``MAESTRO_ML_MLFLOW_URI``), or from the MLflow variable listed in
    `MLFLOW_FALLBACKS`. Durations are in seconds.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=None,
        extra="forbid",
        validate_default=True,
        frozen=True,
        case_sensitive=False,
        env_ignore_empty=True,
    )

    mlflow_uri: str = Field(
        default="http://localhost:5000",
        description="Base URL of the MLflow tracking server.",
    )
    mlflow_registry_uri: str | None = Field(
        default=None,
        description="Base URL of the model registry; falls back to mlflow_uri.",
    )
    kube_context: str | None = Field(
        default=None, description="Kubeconfig context to use; None = current."
    )
    kube_config_path: str | None = Field(
        default=None,
        description="Kubeconfig file; None = $KUBECONFIG, ~/.kube/config, in-cluster.",
    )
    namespace: str = Field(
        default="ml-platform", description="Kubernetes namespace for jobs and models."
    )
    api_url: str | None = Field(
        default=None, description="Base URL of the platform API, if one is used."
    )
    api_key: SecretStr | None = Field(
        default=None, description="Bearer token sent to MLflow and the platform API."
    )
    username: str | None = Field(default=None, description="Basic-auth user name.")
    password: SecretStr | None = Field(default=None, description="Basic-auth password.")
    request_timeout: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Timeout of one HTTP request, in seconds, from sending it to the end "
            "of its response body; each retry gets its own. Streamed artifact "
            "uploads and downloads apply it to each read and write instead, so "
            "a large file can take longer as long as data keeps flowing."
        ),
    )
    training_job_timeout: float = Field(
        default=3600.0, gt=0, description="Default wait for a training job, in seconds."
    )
    verify_ssl: bool = Field(default=True, description="Verify TLS certificates.")
    ca_cert_path: str | None = Field(
        default=None, description="CA bundle that signs the MLflow server certificate."
    )
    client_cert_path: str | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    verbose: bool = Field(default=False, description="Log each request at INFO.")
    max_retries: int = Field(
        default=5, ge=0, le=20, description="Retries of a failed request."
    )
    retry_backoff_base: float = Field(
        default=0.5, ge=0, description="First retry delay in seconds; it doubles."
    )
    retry_backoff_max: float = Field(
        default=30.0, ge=0, description="Upper bound of one retry delay, in seconds."
    )
    retry_max_elapsed: float = Field(
        default=120.0, gt=0, description="Upper bound of all retries, in seconds."
    )
    max_concurrency: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Requests in flight at once; the connection pool matches it.",
    )
    requests_per_connection: int | None = Field(
        default=DEFAULT_REQUESTS_PER_CONNECTION,
        ge=0,
        description=(
            "Average number of requests one HTTP connection serves before the SDK "
            "sends 'Connection: close' on it, so that new connections spread over "
            "the server's workers or replicas. The SDK marks one request in this "
            "many across the whole pool, so each busy connection closes after "
            "about this many requests. 0 or None switches this off."
        ),
    )
    experiment_name: str | None = Field(
        default=None, description="Experiment passed to training jobs."
    )
    storage_uri_map: dict[str, str] = Field(
        default_factory=dict,
        description="Prefix rewrites from artifact URIs to URIs KServe can read.",
    )

    def __init__(self, **values: Any) -> None:
        _check_env_file(values.get("_env_file"))
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _configuration_error(exc, values, values.get("_env_file")) from None
        except SettingsError as exc:
            raise _settings_error(exc, values, values.get("_env_file")) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env_file = getattr(dotenv_settings, "env_file", None)
        if isinstance(env_file, (list, tuple)):
            env_file = env_file[0] if env_file else None
        return (
            init_settings,
            env_settings,
            _FieldsOnlySource(settings_cls, dotenv_settings),
            _MlflowFallbackSource(settings_cls, env_file),
        )

    @model_validator(mode="before")
    @classmethod
    def _move_url_credentials(cls, data: Any) -> Any:
        """Move ``user:password@`` out of the URLs into username and password.

        A URL with credentials works with MLflow's client, but kept in the URL
        the password would show in reprs and in httpx's request log. Explicit
        username and password settings win over the URL's.
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for field_name in _URL_FIELDS:
            value = data.get(field_name)
            if not isinstance(value, str):
                continue
            url, username, password = _split_userinfo(value.strip())
            data[field_name] = url
            if username and not data.get("username"):
                data["username"] = username
            if password is not None and data.get("password") is None:
                data["password"] = password
        return data

    @field_validator(*_FLOAT_FIELDS)
    @classmethod
    def _check_finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number of seconds")
        return value

    @field_validator("requests_per_connection", mode="before")
    @classmethod
    def _reject_bool(cls, value: Any) -> Any:
        # pydantic's lax mode would read True as 1, which would close the
        # connection after every request.
        if isinstance(value, bool):
            raise ValueError(
                "must be a whole number of requests, not true or false "
                "(0 switches connection recycling off)"
            )
        return value

    @field_validator("mlflow_uri", "mlflow_registry_uri", "api_url")
    @classmethod
    def _check_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "must be an http:// or https:// URL of a server "
                "(file stores and 'databricks' URIs are not supported over REST)"
            )
        _check_host_and_port(value)
        if "?" in value or "#" in value:
            # API paths are appended to this URL, so a query string or a
            # fragment would end up in front of them and hide them.
            raise ValueError(
                "must not contain '?' or '#': give only the scheme, host, port "
                "and base path, such as https://mlflow.example.com/mlflow"
            )
        return value.rstrip("/")

    @field_validator("api_key", mode="before")
    @classmethod
    def _strip_token(cls, value: Any) -> Any:
        # A token read from a file often ends in a newline, and a header value
        # with a line break is rejected before the request is sent.
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            return value
        token = raw.strip()
        if any(char.isspace() or not char.isprintable() for char in token):
            raise ValueError(
                "must be a single token without spaces, line breaks or control "
                "characters (the value is not shown)"
            )
        return token

    @field_validator("username")
    @classmethod
    def _check_username(cls, value: str | None) -> str | None:
        if value is not None and (":" in value or not value.isprintable()):
            raise ValueError(
                "must not contain ':' or control characters, because basic auth "
                "separates the user name from the password with ':'"
            )
        return value

    @field_validator("password", mode="before")
    @classmethod
    def _check_password(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, str) and any(char in "\r\n\x00" for char in raw):
            raise ValueError(
                "must not contain line breaks or NUL characters (the value is "
                "not shown)"
            )
        return value

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        from ._validation import check_kubernetes_name

        check_kubernetes_name(value, what="namespace", max_length=63)
        return value

    @model_validator(mode="after")
    def _check_basic_auth(self) -> Config:
        # Basic auth needs both halves. Without a token to fall back on, one
        # half alone would silently send no credentials at all.
        if self.api_key is not None and self.api_key.get_secret_value():
            return self
        has_password = self.password is not None and bool(
            self.password.get_secret_value()
        )
        if has_password and not self.username:
            raise ValueError(
                "a password is set (MAESTRO_ML_PASSWORD or MLFLOW_TRACKING_PASSWORD) "
                "but no username; set the username too, or use a token"
            )
        if self.username and not has_password:
            raise ValueError(
                "a username is set (MAESTRO_ML_USERNAME or MLFLOW_TRACKING_USERNAME) "
                "but no password; set the password too, or use a token"
            )
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Config:
        if not self.verify_ssl and self.ca_cert_path:
            raise ValueError(
                "verify_ssl=False and ca_cert_path cannot both be set; "
                "keep verification on and point ca_cert_path at the CA bundle"
            )
        return self

    @property
    def registry_uri(self) -> str:
        """Base URL of the model registry."""
        return self.mlflow_registry_uri or self.mlflow_uri

    @classmethod
    def from_env(cls, env_file: str | Path | None = None, **overrides: Any) -> Config:
        """Build a configuration from the environment and an optional `.env` file.

        Args:
            env_file: A `.env` file; its values rank below real environment variables.
            **overrides: Explicit values, which rank above everything else.

        Raises:
            ConfigurationException: A value is invalid; the message names the
                variable or argument but never a secret's value.
        """
        return build_config(overrides, env_file=env_file)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in _SECRET_FIELDS and value is not None:
                yield name, "**********"
            else:
                yield name, value


def build_config(
    overrides: Mapping[str, Any], *, env_file: str | Path | None = None
) -> Config:
    """Validate a configuration; errors raise `ConfigurationException`."""
    return Config(_env_file=env_file, **overrides)


def _check_env_file(env_file: object) -> None:
    """Raise `ConfigurationException` when a named `.env` file cannot be read.

    Ignoring a missing file would quietly fall back to the default server, so
    a typo in the path would point the client at the wrong MLflow.
    """
    if env_file is None or isinstance(env_file, (list, tuple)):
        return
    path = Path(env_file)  # type: ignore[arg-type]
    if not path.exists():
        raise ConfigurationException(
            f"env file {str(path)!r} does not exist; fix the path, or pass "
            "env_file=None to read only the environment"
        )
    if not path.is_file():
        raise ConfigurationException(
            f"env file {str(path)!r} is not a regular file; name a .env file"
        )


def _check_host_and_port(url: str) -> None:
    """Raise ValueError for a host or port that no HTTP request can use.

    `urlsplit` accepts ``host:abc`` and ``host:99999`` until `.port` is read,
    and httpx only rejects them at the first request, so they are checked here.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port_text = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise ValueError(
            f"has an invalid port {port_text[:20]!r}: use a number from 1 to 65535"
        ) from None
    if port == 0:
        raise ValueError("has port 0: use a number from 1 to 65535")
    host = parts.hostname or ""
    if any(char.isspace() for char in host):
        raise ValueError(f"has an invalid host {host[:80]!r}: it contains a space")
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        # idna's errors for a host name that IDNA 2008 rejects are ValueErrors.
        raise ValueError(f"is not a valid URL: {exc}") from None


def _split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """Return a URL without its ``user:password@`` part, and that part decoded."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return url, None, None
    if username is None and password is None:
        return url, None, None
    host = parts.netloc.rpartition("@")[2]
    stripped = urlunsplit(parts._replace(netloc=host))
    return (
        stripped,
        unquote(username) if username else None,
        unquote(password) if password is not None else None,
    )


def _settings_error(
    exc: SettingsError, overrides: Mapping[str, Any], env_file: str | Path | None
) -> ConfigurationException:
    # pydantic-settings raises this when a complex field (a dict) is not JSON;
    # its message names the field but never the value.
    match = _SETTINGS_ERROR_FIELD.search(str(exc))
    if match is None:
        return ConfigurationException(f"invalid configuration: {exc}")
    source = _source_of(match.group(1), overrides, env_file)
    return ConfigurationException(
        f"invalid {source}: the value must be a JSON object, "
        'for example {"mlflow-artifacts:/": "s3://bucket/"}'
    )


def _configuration_error(
    exc: ValidationError, overrides: Mapping[str, Any], env_file: str | Path | None
) -> ConfigurationException:
    problems: list[str] = []
    for error in exc.errors(include_input=False, include_url=False):
        # pydantic puts "Value error, " in front of the text of a ValueError
        # raised by a validator.
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:
            # A check across several settings, such as username and password.
            problems.append(f"invalid configuration: {message}")
            continue
        source = _source_of(str(error["loc"][0]), overrides, env_file)
        problems.append(f"invalid {source}: {message}")
    return ConfigurationException("; ".join(problems))


def _source_of(
    field: str, overrides: Mapping[str, Any], env_file: str | Path | None
) -> str:
    if field in overrides:
        return field
    prefixed = ENV_PREFIX + field.upper()
    if prefixed in os.environ:
        return prefixed
    in_file: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        in_file = _read_dotenv(Path(env_file))
    if prefixed in in_file:
        return f"{prefixed} (in {env_file})"
    fallback = MLFLOW_FALLBACKS.get(field)
    if fallback and os.environ.get(fallback):
        return fallback
    if fallback and in_file.get(fallback):
        return f"{fallback} (in {env_file})"
    return field
