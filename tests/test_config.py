"""Tests of the configuration: sources, precedence, errors and secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    ClientClosedError,
    Config,
    ConfigurationException,
)

SECRET = "s3cr3t-value-do-not-show"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test without MLflow or SDK variables."""
    import os

    for name in list(os.environ):
        if name.startswith(("MAESTRO_ML_", "MLFLOW_")):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    config = Config.from_env()

    assert config.mlflow_uri == "http://localhost:5000"
    assert config.registry_uri == "http://localhost:5000"
    assert config.namespace == "ml-platform"
    assert config.request_timeout == 30.0
    assert config.training_job_timeout == 3600.0
    assert config.verify_ssl is True
    assert config.verbose is False
    assert config.api_key is None


def test_precedence_explicit_maestro_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert Config.from_env().mlflow_uri == "http://127.0.0.1:1"

    monkeypatch.setenv("MAESTRO_ML_MLFLOW_URI", "http://127.0.0.1:2/")
    assert Config.from_env().mlflow_uri == "http://127.0.0.1:2"

    explicit = Config.from_env(mlflow_uri="http://127.0.0.1:3")
    assert explicit.mlflow_uri == "http://127.0.0.1:3"


def test_registry_uri_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert Config.from_env().registry_uri == "http://127.0.0.1:1"

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://127.0.0.1:4")
    config = Config.from_env()
    assert config.mlflow_uri == "http://127.0.0.1:1"
    assert config.registry_uri == "http://127.0.0.1:4"


def test_env_file_ranks_below_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\n"
        "MAESTRO_ML_MLFLOW_URI=http://127.0.0.1:10\n"
        "export MAESTRO_ML_NAMESPACE='from-file'\n"
        'MLFLOW_TRACKING_TOKEN="file-token"\n'
        "MLFLOW_REGISTRY_URI=http://127.0.0.1:11\n"
    )
    monkeypatch.setenv("MAESTRO_ML_MLFLOW_URI", "http://127.0.0.1:20")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "http://127.0.0.1:21")

    config = Config.from_env(env_file=env_file)

    assert config.mlflow_uri == "http://127.0.0.1:20"
    assert config.namespace == "from-file"
    assert config.api_key is not None
    assert config.api_key.get_secret_value() == "file-token"
    assert config.registry_uri == "http://127.0.0.1:21"


def test_env_file_maestro_beats_mlflow_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAESTRO_ML_MLFLOW_URI=http://127.0.0.1:30\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:31")

    assert Config.from_env(env_file=env_file).mlflow_uri == "http://127.0.0.1:30"


def test_missing_env_file_rejected() -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(env_file="/nonexistent/maestro/.env")

    assert "/nonexistent/maestro/.env" in str(caught.value)
    assert "does not exist" in str(caught.value)


def test_env_file_directory_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(env_file=tmp_path)

    assert str(tmp_path) in str(caught.value)
    assert "not a regular file" in str(caught.value)


async def test_client_missing_env_file_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "missing.env"

    with pytest.raises(ConfigurationException) as caught:
        AsyncMaestroClient(env_file=missing)

    assert str(missing) in str(caught.value)


@pytest.mark.parametrize("field", ["mlflow_uri", "mlflow_registry_uri", "api_url"])
@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://127.0.0.1:abc", "'abc'"),
        ("http://127.0.0.1:99999", "'99999'"),
        ("https://127.0.0.1:-1/x", "'-1'"),
        ("http://127.0.0.1:0", "port 0"),
    ],
)
def test_uri_invalid_port_rejected(field: str, uri: str, shown: str) -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(**{field: uri})

    message = str(caught.value)
    assert message.startswith(f"invalid {field}: ")
    assert shown in message


def test_uri_invalid_port_in_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:abc")

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env()

    assert "invalid MLFLOW_TRACKING_URI: " in str(caught.value)


@pytest.mark.parametrize(
    "uri", ["http://exa mple.com", "http://\N{SNOWMAN}.example.com", "http://[zz]"]
)
def test_uri_invalid_host_rejected(uri: str) -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(mlflow_uri=uri)

    assert "invalid mlflow_uri: " in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "verify"),
    [("true", False), ("TRUE", False), ("1", False), ("false", True), ("0", True)],
)
def test_insecure_tls_inverted(
    monkeypatch: pytest.MonkeyPatch, raw: str, verify: bool
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", raw)

    assert Config.from_env().verify_ssl is verify


def test_maestro_verify_ssl_beats_insecure_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    monkeypatch.setenv("MAESTRO_ML_VERIFY_SSL", "true")

    assert Config.from_env().verify_ssl is True


def test_invalid_insecure_tls_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "perhaps")

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env()

    assert "MLFLOW_TRACKING_INSECURE_TLS" in str(caught.value)


def test_tls_flags_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", "/etc/ssl/ca.pem")

    with pytest.raises(ConfigurationException):
        Config.from_env()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAESTRO_ML_REQUEST_TIMEOUT", "-1"),
        ("MAESTRO_ML_MAX_CONCURRENCY", "many"),
        ("MAESTRO_ML_MAX_RETRIES", "100"),
        ("MAESTRO_ML_NAMESPACE", "Not_A_Namespace"),
        ("MAESTRO_ML_VERBOSE", "loud"),
        ("MLFLOW_TRACKING_URI", "file:///tmp/mlruns"),
        ("MLFLOW_REGISTRY_URI", "databricks"),
    ],
)
def test_invalid_variable_named_in_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env()

    assert variable in str(caught.value)


def test_invalid_argument_named_in_error() -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(request_timeout=0)

    message = str(caught.value)
    assert message.startswith("invalid request_timeout: ")
    assert "Value error" not in message


def test_invalid_env_file_value_names_file(tmp_path: Path) -> None:
    env_file = tmp_path / "settings.env"
    env_file.write_text("MAESTRO_ML_REQUEST_TIMEOUT=soon\n")

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(env_file=env_file)

    assert "MAESTRO_ML_REQUEST_TIMEOUT" in str(caught.value)
    assert str(env_file) in str(caught.value)


def test_invalid_mlflow_variable_in_env_file_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "mlflow.env"
    env_file.write_text("MLFLOW_TRACKING_URI=ftp://127.0.0.1\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(env_file=env_file)

    assert "MLFLOW_TRACKING_URI" in str(caught.value)
    assert str(env_file) in str(caught.value)


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:5000/?workspace=1",
        "http://127.0.0.1:5000/#models",
        "http://127.0.0.1:5000/?",
    ],
)
def test_uri_with_query_or_fragment_rejected(uri: str) -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config(mlflow_uri=uri)

    assert "mlflow_uri" in str(caught.value)
    assert "'?' or '#'" in str(caught.value)


def test_errors_never_show_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", SECRET)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    monkeypatch.setenv("MAESTRO_ML_MLFLOW_URI", "ftp://127.0.0.1")

    with pytest.raises(ConfigurationException) as env_error:
        Config.from_env()
    with pytest.raises(ConfigurationException) as argument_error:
        Config.from_env(api_key=[SECRET], password={"value": SECRET})

    for error in (env_error.value, argument_error.value):
        assert SECRET not in str(error)
        assert SECRET not in repr(error)
    assert "api_key" in str(argument_error.value)


def test_repr_hides_secrets() -> None:
    config = Config(api_key=SECRET, username="alice", password=SECRET + "-pw")

    for text in (repr(config), str(config), repr(config.model_dump())):
        assert SECRET not in text
    assert "alice" in repr(config)
    assert config.api_key is not None
    assert config.api_key.get_secret_value() == SECRET


async def test_client_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_ML_MLFLOW_URI", "http://127.0.0.1:40")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", SECRET)

    async with AsyncMaestroClient() as client:
        assert client.config.mlflow_uri == "http://127.0.0.1:40"
        assert client.config.api_key is not None
        assert SECRET not in repr(client)


async def test_client_from_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAESTRO_ML_NAMESPACE=team-a\n")

    async with AsyncMaestroClient(env_file=env_file) as client:
        assert client.config.namespace == "team-a"


async def test_client_explicit_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_ML_NAMESPACE", "from-env")

    async with AsyncMaestroClient(
        mlflow_uri="http://127.0.0.1:41", namespace="explicit", max_concurrency=4
    ) as client:
        assert client.config.mlflow_uri == "http://127.0.0.1:41"
        assert client.config.namespace == "explicit"
        assert client.config.max_concurrency == 4


async def test_client_from_config_with_overrides() -> None:
    config = Config(mlflow_uri="http://127.0.0.1:42", api_key=SECRET, password="pw")

    async with AsyncMaestroClient(config=config) as plain:
        assert plain.config is config
    async with AsyncMaestroClient(config=config, namespace="other") as client:
        assert client.config.namespace == "other"
        assert client.config.mlflow_uri == "http://127.0.0.1:42"
        assert client.config.api_key is not None
        assert client.config.api_key.get_secret_value() == SECRET
        assert client.config.password is not None
        assert client.config.password.get_secret_value() == "pw"


async def test_closed_client_raises() -> None:
    client = AsyncMaestroClient(mlflow_uri="http://127.0.0.1:9")
    await client.aclose()
    await client.aclose()

    assert client.closed
    with pytest.raises(ClientClosedError):
        await client.models.get("m")
    with pytest.raises(ClientClosedError):
        await client.models.list()
    with pytest.raises(ClientClosedError):
        async with client:
            pass


async def test_client_closed_after_context() -> None:
    async with AsyncMaestroClient(mlflow_uri="http://127.0.0.1:9") as client:
        models = client.models

    with pytest.raises(ClientClosedError):
        await models.create("m")


def test_import_does_not_load_kubernetes() -> None:
    script = (
        "import sys, maestro_ml_async\n"
        "client = maestro_ml_async.AsyncMaestroClient(mlflow_uri='http://127.0.0.1:9')\n"
        "client.models\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == "[]"


def test_url_credentials_move_to_basic_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:{SECRET}@127.0.0.1:5000/")
    config = Config.from_env()

    assert config.mlflow_uri == "http://127.0.0.1:5000"
    assert config.username == "alice"
    assert config.password is not None
    assert config.password.get_secret_value() == SECRET
    assert SECRET not in repr(config)


def test_explicit_credentials_beat_url_ones() -> None:
    config = Config.from_env(
        mlflow_uri="http://url-user:url-pw@127.0.0.1:5000",
        username="bob",
        password="bob-pw",
    )

    assert config.mlflow_uri == "http://127.0.0.1:5000"
    assert config.username == "bob"
    assert config.password is not None
    assert config.password.get_secret_value() == "bob-pw"


def test_empty_variables_count_as_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MLFLOW_TRACKING_TOKEN=from-file\n")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MAESTRO_ML_API_KEY"):
        monkeypatch.setenv(name, "")

    assert Config.from_env().mlflow_uri == "http://localhost:5000"
    assert Config.from_env().api_key is None
    from_file = Config.from_env(env_file=env_file).api_key
    assert from_file is not None
    assert from_file.get_secret_value() == "from-file"


def test_env_file_mlflow_keys_follow_dotenv_syntax(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "MLFLOW_TRACKING_URI=http://127.0.0.1:7 # the local server\n"
        'MLFLOW_TRACKING_TOKEN="tok#en"\n'
    )
    config = Config.from_env(env_file=env_file)

    assert config.mlflow_uri == "http://127.0.0.1:7"
    assert config.api_key is not None
    assert config.api_key.get_secret_value() == "tok#en"


def test_bad_json_setting_is_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAESTRO_ML_STORAGE_URI_MAP", "s3-not-json")

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env()

    assert "MAESTRO_ML_STORAGE_URI_MAP" in str(caught.value)
    assert "s3-not-json" not in str(caught.value)


def test_direct_config_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config(api_key=12345, request_timeout="soon")  # type: ignore[arg-type]

    assert "api_key" in str(caught.value)
    assert "request_timeout" in str(caught.value)
    assert "12345" not in str(caught.value)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_durations_rejected(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MAESTRO_ML_REQUEST_TIMEOUT", value)

    with pytest.raises(ConfigurationException, match="MAESTRO_ML_REQUEST_TIMEOUT"):
        Config.from_env()


def test_requests_per_connection_default() -> None:
    assert Config.from_env().requests_per_connection == 20


@pytest.mark.parametrize(("raw", "expected"), [("7", 7), ("1", 1), ("0", 0)])
def test_requests_per_connection_from_env(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: int
) -> None:
    monkeypatch.setenv("MAESTRO_ML_REQUESTS_PER_CONNECTION", raw)

    assert Config.from_env().requests_per_connection == expected


def test_requests_per_connection_none_allowed() -> None:
    assert Config(requests_per_connection=None).requests_per_connection is None


@pytest.mark.parametrize("raw", ["-1", "many", "2.5", "true", "10 requests"])
def test_invalid_requests_per_connection_env(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("MAESTRO_ML_REQUESTS_PER_CONNECTION", raw)

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env()

    assert "MAESTRO_ML_REQUESTS_PER_CONNECTION" in str(caught.value)


@pytest.mark.parametrize("value", [-5, True, False, 2.5, "often"])
def test_invalid_requests_per_connection_argument(value: object) -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(requests_per_connection=value)

    assert "invalid requests_per_connection: " in str(caught.value)


def test_client_rejects_bad_requests_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAESTRO_ML_REQUESTS_PER_CONNECTION", "-3")
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    with pytest.raises(ConfigurationException, match="REQUESTS_PER_CONNECTION"):
        AsyncMaestroClient(
            mlflow_uri="http://127.0.0.1:43", http_transport=httpx.MockTransport(record)
        )

    assert sent == []


async def test_client_overrides_requests_per_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAESTRO_ML_REQUESTS_PER_CONNECTION", "5")
    config = Config(mlflow_uri="http://127.0.0.1:44", requests_per_connection=9)

    async with AsyncMaestroClient(requests_per_connection=0) as from_env:
        assert from_env.config.requests_per_connection == 0
    async with AsyncMaestroClient(config=config, requests_per_connection=3) as merged:
        assert merged.config.requests_per_connection == 3
    async with AsyncMaestroClient(config=config) as plain:
        assert plain.config.requests_per_connection == 9


def test_env_example_lists_every_setting() -> None:
    from maestro_ml_async._config import MLFLOW_FALLBACKS

    text = (Path(__file__).parents[1] / ".env.example").read_text()

    for field in Config.model_fields:
        assert f"MAESTRO_ML_{field.upper()}=" in text, field
    for variable in MLFLOW_FALLBACKS.values():
        assert variable in text, variable
