"""The ``maestro-ml`` command line against the session's real MLflow server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from maestro_ml_async.cli._app import app
from maestro_ml_async.testing.mlflow_server import free_port

API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def rest(mlflow_server_url: str) -> Iterator[httpx.Client]:
    """A plain HTTP client for setting up server state outside the CLI."""
    with httpx.Client(base_url=mlflow_server_url + API, timeout=30) as client:
        yield client


def post(rest: httpx.Client, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    response = rest.post(endpoint, json=body)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def model(rest: httpx.Client, unique: str) -> str:
    """A registered model with three versions, v2 in Staging."""
    name = f"cli model {unique}"
    post(rest, "registered-models/create", {"name": name, "tags": []})
    for index in range(3):
        post(
            rest,
            "model-versions/create",
            {"name": name, "source": f"s3://bucket/cli/{unique}/{index}"},
        )
    post(
        rest,
        "model-versions/transition-stage",
        {
            "name": name,
            "version": "2",
            "stage": "Staging",
            "archive_existing_versions": False,
        },
    )
    return name


def invoke(
    runner: CliRunner, url: str, *args: str, env: dict[str, str] | None = None
) -> Any:
    return runner.invoke(app, ["--mlflow-uri", url, *args], env=env)


def json_output(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr or result.stdout
    return json.loads(result.stdout)


def test_models_list_table(runner: CliRunner, mlflow_server_url: str, model: str):
    result = invoke(runner, mlflow_server_url, "models", "list")
    assert result.exit_code == 0, result.stderr
    assert "registered models" in result.stdout
    assert "name" in result.stdout


def test_models_list_json_filter(runner: CliRunner, mlflow_server_url: str, model: str):
    result = invoke(
        runner,
        mlflow_server_url,
        "models",
        "list",
        "--filter",
        f"name = '{model}'",
        "-o",
        "json",
    )
    models = json_output(result)
    assert [item["name"] for item in models] == [model]


def test_models_get_json(runner: CliRunner, mlflow_server_url: str, model: str):
    found = json_output(
        invoke(runner, mlflow_server_url, "models", "get", model, "-o", "json")
    )
    assert found["name"] == model
    stages = {v["version"]: v["current_stage"] for v in found["latest_versions"]}
    assert stages == {"2": "Staging", "3": "None"}


def test_models_get_table(runner: CliRunner, mlflow_server_url: str, model: str):
    result = invoke(runner, mlflow_server_url, "models", "get", model)
    assert result.exit_code == 0, result.stderr
    assert "v2 (Staging)" in result.stdout


def test_models_versions_newest_first(
    runner: CliRunner, mlflow_server_url: str, model: str
):
    versions = json_output(
        invoke(runner, mlflow_server_url, "models", "versions", model, "-o", "json")
    )
    assert [v["version"] for v in versions] == ["3", "2", "1"]


def test_models_versions_quote_in_name(
    runner: CliRunner, mlflow_server_url: str, rest: httpx.Client, unique: str
):
    name = f"it's {unique}"
    post(rest, "registered-models/create", {"name": name})
    post(rest, "model-versions/create", {"name": name, "source": "s3://b/q"})
    versions = json_output(
        invoke(runner, mlflow_server_url, "models", "versions", name, "-o", "json")
    )
    assert [v["version"] for v in versions] == ["1"]


def test_models_versions_both_quotes(
    runner: CliRunner, mlflow_server_url: str, rest: httpx.Client, unique: str
):
    # No filter literal can hold both quote characters, so the CLI searches
    # with a LIKE pattern. The decoy matches that pattern but is not the model.
    name = f'it\'s "{unique}"'
    decoy = name.replace("'", "x")
    for model_name, count in ((name, 2), (decoy, 1)):
        post(rest, "registered-models/create", {"name": model_name})
        for _ in range(count):
            post(
                rest,
                "model-versions/create",
                {"name": model_name, "source": "s3://b/q"},
            )

    versions = json_output(
        invoke(runner, mlflow_server_url, "models", "versions", name, "-o", "json")
    )
    assert [v["version"] for v in versions] == ["2", "1"]
    assert {v["name"] for v in versions} == {name}

    newest = json_output(
        invoke(
            runner,
            mlflow_server_url,
            "models",
            "versions",
            name,
            "--max-results",
            "1",
            "-o",
            "json",
        )
    )
    assert [v["version"] for v in newest] == ["2"]

    tagged = json_output(
        invoke(
            runner,
            mlflow_server_url,
            "models",
            "tag",
            name,
            "k",
            "v",
            "--all-versions",
            "-o",
            "json",
        )
    )
    assert tagged["versions"] == 2
    decoy_version = rest.get(
        "model-versions/get", params={"name": decoy, "version": "1"}
    ).json()
    assert decoy_version["model_version"].get("tags", []) == []


def test_models_transition(runner: CliRunner, mlflow_server_url: str, model: str):
    moved = json_output(
        invoke(
            runner,
            mlflow_server_url,
            "models",
            "transition",
            model,
            "3",
            "production",
            "-o",
            "json",
        )
    )
    assert moved["current_stage"] == "Production"


def test_models_transition_bad_stage(
    runner: CliRunner, mlflow_server_url: str, model: str
):
    result = invoke(
        runner, mlflow_server_url, "models", "transition", model, "3", "Canary"
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_models_alias_set_and_delete(
    runner: CliRunner, mlflow_server_url: str, model: str
):
    set_result = json_output(
        invoke(
            runner,
            mlflow_server_url,
            "models",
            "alias",
            model,
            "champion",
            "2",
            "-o",
            "json",
        )
    )
    assert set_result["version"] == "2"
    found = json_output(
        invoke(runner, mlflow_server_url, "models", "get", model, "-o", "json")
    )
    assert found["aliases"] == {"champion": "2"}
    deleted = invoke(
        runner, mlflow_server_url, "models", "alias", model, "champion", "--delete"
    )
    assert deleted.exit_code == 0, deleted.stderr
    found = json_output(
        invoke(runner, mlflow_server_url, "models", "get", model, "-o", "json")
    )
    assert found["aliases"] == {}


def test_models_alias_needs_version_or_delete(
    runner: CliRunner, mlflow_server_url: str, model: str
):
    result = invoke(runner, mlflow_server_url, "models", "alias", model, "champion")
    assert result.exit_code == 1
    assert "--delete" in result.stderr


def test_models_tag_model_and_version(
    runner: CliRunner, mlflow_server_url: str, model: str, rest: httpx.Client
):
    on_model = invoke(runner, mlflow_server_url, "models", "tag", model, "team", "risk")
    assert on_model.exit_code == 0, on_model.stderr
    on_version = invoke(
        runner, mlflow_server_url, "models", "tag", model, "ok", "yes", "--version", "1"
    )
    assert on_version.exit_code == 0, on_version.stderr
    body = rest.get("registered-models/get", params={"name": model}).json()
    assert {"key": "team", "value": "risk"} in body["registered_model"]["tags"]
    version = rest.get("model-versions/get", params={"name": model, "version": "1"})
    assert {"key": "ok", "value": "yes"} in version.json()["model_version"]["tags"]


def test_models_tag_all_versions(
    runner: CliRunner, mlflow_server_url: str, model: str, rest: httpx.Client
):
    result = invoke(
        runner,
        mlflow_server_url,
        "models",
        "tag",
        model,
        "audited",
        "2026",
        "--all-versions",
        "-o",
        "json",
    )
    assert json_output(result)["versions"] == 3
    for version in ("1", "2", "3"):
        body = rest.get(
            "model-versions/get", params={"name": model, "version": version}
        ).json()
        assert {"key": "audited", "value": "2026"} in body["model_version"]["tags"]


def test_models_tag_all_versions_progress_bar(
    runner: CliRunner, mlflow_server_url: str, model: str
):
    result = invoke(
        runner, mlflow_server_url, "models", "tag", model, "k", "v", "--all-versions"
    )
    assert result.exit_code == 0, result.stderr
    assert "3/3" in result.stderr
    assert "3/3" not in result.stdout
    assert "versions" in result.stdout


def test_models_get_missing(runner: CliRunner, mlflow_server_url: str, unique: str):
    result = invoke(runner, mlflow_server_url, "models", "get", f"missing-{unique}")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error:")
    assert f"missing-{unique}" in lines[0]


def test_models_get_missing_debug_traceback(
    runner: CliRunner, mlflow_server_url: str, unique: str
):
    result = runner.invoke(
        app,
        ["--mlflow-uri", mlflow_server_url, "--debug", "models", "get", f"x-{unique}"],
    )
    assert result.exit_code == 1
    assert "ModelNotFoundException" in result.stderr
    assert "Traceback" in result.stderr


def test_bad_url_one_line(runner: CliRunner):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = invoke(runner, url, "models", "list", env={"MAESTRO_ML_MAX_RETRIES": "0"})
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "could not reach" in lines[0]
    assert time.monotonic() - started < 20


def test_invalid_url_configuration_error(runner: CliRunner):
    result = invoke(runner, "not a url", "models", "list")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_experiments_list_and_get(
    runner: CliRunner, mlflow_server_url: str, rest: httpx.Client, unique: str
):
    name = f"cli-exp-{unique}"
    created = post(rest, "experiments/create", {"name": name})
    experiment_id = created["experiment_id"]
    listed = json_output(
        invoke(
            runner,
            mlflow_server_url,
            "experiments",
            "list",
            "--filter",
            f"name = '{name}'",
            "-o",
            "json",
        )
    )
    assert [item["experiment_id"] for item in listed] == [experiment_id]
    by_id = json_output(
        invoke(
            runner, mlflow_server_url, "experiments", "get", experiment_id, "-o", "json"
        )
    )
    assert by_id["name"] == name
    by_name = json_output(
        invoke(
            runner,
            mlflow_server_url,
            "experiments",
            "get",
            name,
            "--by-name",
            "-o",
            "json",
        )
    )
    assert by_name["experiment_id"] == experiment_id


def test_experiments_deleted_view(
    runner: CliRunner, mlflow_server_url: str, rest: httpx.Client, unique: str
):
    name = f"cli-gone-{unique}"
    experiment_id = post(rest, "experiments/create", {"name": name})["experiment_id"]
    post(rest, "experiments/delete", {"experiment_id": experiment_id})
    args = ["experiments", "list", "--filter", f"name = '{name}'", "-o", "json"]
    active = json_output(invoke(runner, mlflow_server_url, *args))
    deleted = json_output(invoke(runner, mlflow_server_url, *args, "--view", "deleted"))
    assert active == []
    assert [item["experiment_id"] for item in deleted] == [experiment_id]


def test_experiments_get_missing_name(
    runner: CliRunner, mlflow_server_url: str, unique: str
):
    result = invoke(
        runner, mlflow_server_url, "experiments", "get", f"no-{unique}", "--by-name"
    )
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1


def test_experiments_bad_view(runner: CliRunner, mlflow_server_url: str):
    result = invoke(
        runner, mlflow_server_url, "experiments", "list", "--view", "archived"
    )
    assert result.exit_code == 2
    assert "--view" in result.output


def test_runs_list_unknown_experiment(
    runner: CliRunner, mlflow_server_url: str, rest: httpx.Client, unique: str
):
    known = post(rest, "experiments/create", {"name": f"cli-known-{unique}"})
    unknown = "987654321987"
    args = ["runs", "list", "-e", known["experiment_id"], "-e", unknown]
    result = invoke(runner, mlflow_server_url, *args, "-o", "json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ExperimentNotFoundException"
    assert unknown in error["message"]
    assert len(result.stderr.splitlines()) == 1


def test_runs_list_and_get(
    runner: CliRunner, mlflow_server_url: str, rest: httpx.Client, unique: str
):
    experiment_id = post(rest, "experiments/create", {"name": f"cli-runs-{unique}"})[
        "experiment_id"
    ]
    run_ids = []
    for index in range(3):
        run = post(
            rest,
            "runs/create",
            {"experiment_id": experiment_id, "run_name": f"r{index}"},
        )["run"]
        run_id = run["info"]["run_id"]
        run_ids.append(run_id)
        post(
            rest,
            "runs/log-metric",
            {
                "run_id": run_id,
                "key": "accuracy",
                "value": 0.5 + index / 10,
                "timestamp": 1_733_184_000_000,
                "step": 0,
            },
        )
        param = {"run_id": run_id, "key": "lr", "value": "0.1"}
        post(rest, "runs/log-parameter", param)
    listed = json_output(
        invoke(
            runner,
            mlflow_server_url,
            "runs",
            "list",
            "-e",
            experiment_id,
            "--order-by",
            "metrics.accuracy DESC",
            "-o",
            "json",
        )
    )
    assert [item["info"]["run_id"] for item in listed] == run_ids[::-1]
    table = invoke(runner, mlflow_server_url, "runs", "list", "-e", experiment_id)
    assert table.exit_code == 0, table.stderr
    assert "3 runs" in table.stdout
    found = json_output(
        invoke(runner, mlflow_server_url, "runs", "get", run_ids[0], "-o", "json")
    )
    assert found["data"]["params"] == {"lr": "0.1"}
    assert found["info"]["run_name"] == "r0"


def test_runs_get_missing(runner: CliRunner, mlflow_server_url: str):
    result = invoke(runner, mlflow_server_url, "runs", "get", uuid.uuid4().hex)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_units(runner: CliRunner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "seconds" in result.stdout
    jobs = runner.invoke(app, ["jobs", "submit", "--help"])
    assert jobs.exit_code == 0
    assert "--framework" in jobs.stdout
    assert "MiB" in jobs.stdout


def test_every_option_has_help():
    import typer.main

    missing = []
    durations = []

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            text = getattr(param, "help", None) or ""
            if not text.strip():
                missing.append(f"{path} {param.name}")
            if "timeout" in param.name or "delay" in param.name:
                durations.append((f"{path} {param.name}", text))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "maestro-ml")
    assert missing == []
    assert durations
    for where, text in durations:
        assert "seconds" in text.lower(), where


def test_bad_pair_option(runner: CliRunner, mlflow_server_url: str):
    result = invoke(
        runner,
        mlflow_server_url,
        "jobs",
        "submit",
        "j1",
        "--framework",
        "sklearn",
        "--image",
        "python:3.11",
        "--param",
        "novalue",
    )
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


def test_bad_version_is_usage_error(runner: CliRunner, mlflow_server_url: str):
    # Exit code 2 is click's code for a bad command line.
    command_lines = [
        ("models", "transition", "m", "abc", "Production"),
        ("models", "transition", "m", "0", "Production"),
        ("models", "transition", "m", "1.5", "Production"),
        ("models", "alias", "m", "champion", "x"),
        ("models", "tag", "m", "k", "v", "--version", "v2"),
        ("deployments", "create", "d", "--model", "m", "--version", "1.5"),
    ]
    for args in command_lines:
        result = invoke(runner, mlflow_server_url, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "positive integer" in result.output, args


def test_timeout_without_wait_rejected(runner: CliRunner, mlflow_server_url: str):
    # No cluster is configured, so a command that got past its arguments
    # would fail with exit code 1 instead.
    command_lines = [
        ("jobs", "submit", "j1", "-f", "sklearn", "--image", "img", "--timeout", "5"),
        ("deployments", "create", "d", "-m", "m", "--no-wait", "--timeout", "5"),
        ("deployments", "scale", "d", "2", "--timeout", "5"),
        ("deployments", "promote", "d", "--timeout", "5"),
        ("deployments", "rollback", "d", "--timeout", "5"),
    ]
    for args in command_lines:
        result = invoke(runner, mlflow_server_url, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "--wait" in result.output, args
