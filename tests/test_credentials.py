"""Credential settings: checked and tidied before any request, never shown."""

from __future__ import annotations

import pytest

from maestro_ml_async import (
    AsyncMaestroClient,
    Config,
    ConfigurationException,
    MaestroMLException,
)

SECRET = "tok-secret-931"


@pytest.mark.parametrize("raw", [f"{SECRET}\n", f"  {SECRET}\r\n", f"\t{SECRET}"])
def test_token_surrounding_whitespace_stripped(raw: str) -> None:
    config = Config(mlflow_uri="http://127.0.0.1:1", api_key=raw)

    assert config.api_key is not None
    assert config.api_key.get_secret_value() == SECRET


@pytest.mark.parametrize(
    "raw", [f"{SECRET}\nX-Other: 1", f"tok {SECRET}", f"{SECRET}\x00", f"a\x1b{SECRET}"]
)
def test_token_inner_break_rejected_unshown(raw: str) -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config(mlflow_uri="http://127.0.0.1:1", api_key=raw)

    assert "api_key" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_token_variable_named_unshown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", f"{SECRET}\ndef")

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env()

    assert "MLFLOW_TRACKING_TOKEN" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_password_line_break_rejected_unshown() -> None:
    with pytest.raises(ConfigurationException) as caught:
        Config(
            mlflow_uri="http://127.0.0.1:1", username="alice", password=f"{SECRET}\n"
        )

    assert "password" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_password_spaces_kept() -> None:
    config = Config(
        mlflow_uri="http://127.0.0.1:1", username="alice", password=f" {SECRET} "
    )

    assert config.password is not None
    assert config.password.get_secret_value() == f" {SECRET} "


def test_username_with_colon_rejected() -> None:
    with pytest.raises(ConfigurationException, match="must not contain ':'"):
        Config(mlflow_uri="http://127.0.0.1:1", username="a:b", password="pw")


def test_password_without_username_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)

    with pytest.raises(ConfigurationException) as caught:
        Config.from_env(mlflow_uri="http://127.0.0.1:1")

    assert "no username" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_username_without_password_rejected() -> None:
    with pytest.raises(ConfigurationException, match="no password"):
        Config(mlflow_uri="http://127.0.0.1:1", username="alice")


def test_half_basic_auth_allowed_with_token() -> None:
    config = Config(mlflow_uri="http://127.0.0.1:1", api_key=SECRET, password="pw")

    assert config.api_key is not None
    assert config.username is None


async def test_unencodable_header_not_sent_or_shown(mlflow_server_url: str) -> None:
    async with AsyncMaestroClient(mlflow_uri=mlflow_server_url) as client:
        transport = client._mlflow
        with pytest.raises(MaestroMLException) as caught:
            await transport.request(
                "GET",
                "/api/2.0/mlflow/registered-models/search",
                headers={"X-Extra": f"{SECRET}\nInjected: 1"},
            )

    message = str(caught.value)
    assert SECRET not in message
    assert "was not sent" in message
    assert "may have been applied" not in message


@pytest.mark.parametrize("mode", ["SAFE", "UNSENT", "NEVER"])
def test_unencodable_request_not_retried(mode: str) -> None:
    import httpx

    from maestro_ml_async._transport._retry import RetryMode, should_retry

    assert not should_retry(RetryMode[mode], httpx.LocalProtocolError("bad header"))
