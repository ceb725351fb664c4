"""What the command line writes: strict JSON, escaped tables and errors, pipes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from maestro_ml_async import MaestroClient
from maestro_ml_async.cli._app import app
from maestro_ml_async.cli._common import BROKEN_PIPE_EXIT_CODE, to_jsonable
from maestro_ml_async.cli._text import printable
from maestro_ml_async.testing.mlflow_server import free_port

ESC = "\x1b"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, url: str, *args: str) -> Any:
    return runner.invoke(app, ["--mlflow-uri", url, *args])


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def strict_json(text: str) -> Any:
    """Parse `text` as JSON, rejecting the NaN and Infinity literals."""
    return json.loads(text, parse_constant=reject_constant)


def test_printable_escapes_controls():
    assert printable("a\x1b[31mb\x07") == "a\\x1b[31mb\\x07"
    assert printable("tab\tand\nline") == "tab\tand\nline"
    assert printable("one\n two\r\n", one_line=True) == "one two"
    assert printable("\x9b2J") == "\\x9b2J"


def test_to_jsonable_non_finite_floats():
    converted = to_jsonable({"a": math.nan, "b": [math.inf, -math.inf], "c": 1.5})
    assert converted == {"a": "NaN", "b": ["Infinity", "-Infinity"], "c": 1.5}


def test_runs_get_json_nan_metric(
    runner: CliRunner, mlflow_server_url: str, unique: str
):
    # MLflow stores NaN metrics; JSON has no literal for NaN, so jq and other
    # strict parsers reject a bare NaN in the output.
    with MaestroClient(mlflow_uri=mlflow_server_url) as client:
        experiment = client.experiments.get_or_create(f"cli-nan-{unique}")
        run = client.runs.create(experiment.experiment_id)
        client.runs.log_metric(run.info.run_id, "loss", math.nan)
    run_id = run.info.run_id

    result = invoke(runner, mlflow_server_url, "runs", "get", run_id, "-o", "json")
    assert result.exit_code == 0, result.stderr
    found = strict_json(result.stdout)
    assert found["data"]["metrics"][0]["value"] == "NaN"

    args = ["runs", "list", "-e", experiment.experiment_id, "-o", "json"]
    listed = invoke(runner, mlflow_server_url, *args)
    assert listed.exit_code == 0, listed.stderr
    assert strict_json(listed.stdout)[0]["data"]["metrics"][0]["value"] == "NaN"


def test_table_shows_markup_and_escapes(
    runner: CliRunner, mlflow_server_url: str, unique: str
):
    # Tag values are data: "[/]" is not rich markup to parse (it raised
    # MarkupError), and an ANSI escape must not reach the terminal raw.
    name = f"cli-markup-[bold]-{unique}"
    tags = {"note": "[red]x[/red] and [/]", "color": f"{ESC}[31mred{ESC}[0m"}
    with MaestroClient(mlflow_uri=mlflow_server_url) as client:
        client.models.create(name, tags=tags)

    result = invoke(runner, mlflow_server_url, "models", "get", name)
    assert result.exit_code == 0, result.stderr
    text = "".join(result.stdout.split())
    assert "[red]x[/red]and[/]" in text
    assert "[bold]" in text
    assert ESC not in result.stdout
    assert "\\x1b[31mred\\x1b[0m" in text

    listed = invoke(
        runner, mlflow_server_url, "models", "list", "--filter", f"name = '{name}'"
    )
    assert listed.exit_code == 0, listed.stderr
    assert "[/]" in listed.stdout
    assert ESC not in listed.stdout


def test_list_table_cuts_long_values(
    runner: CliRunner, mlflow_server_url: str, unique: str
):
    name = f"long-tag-{unique}"
    value = "v" * 3000
    with MaestroClient(mlflow_uri=mlflow_server_url) as client:
        client.models.create(name, tags={"long": value})
    args = ["models", "list", "--filter", f"name = '{name}'"]

    table = invoke(runner, mlflow_server_url, *args)
    assert table.exit_code == 0, table.stderr
    assert "…" in table.stdout
    assert len(table.stdout.splitlines()) < 30

    detail = invoke(runner, mlflow_server_url, "models", "get", name)
    assert detail.exit_code == 0, detail.stderr
    assert detail.stdout.count("v") >= 3000

    listed = strict_json(invoke(runner, mlflow_server_url, *args, "-o", "json").stdout)
    assert listed[0]["tags"] == {"long": value}


def test_error_message_escapes_controls(runner: CliRunner, mlflow_server_url: str):
    # The server repeats the requested name in its message.
    result = invoke(
        runner, mlflow_server_url, "models", "get", f"x{ESC}]0;owned{ESC}\\"
    )
    assert result.exit_code == 1
    assert ESC not in result.stderr
    assert "\\x1b]0;owned" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_json_error_object_on_stdout(
    runner: CliRunner, mlflow_server_url: str, unique: str
):
    args = ["models", "get", f"missing-{unique}", "-o", "json"]
    result = invoke(runner, mlflow_server_url, *args)
    assert result.exit_code == 1
    error = strict_json(result.stdout)["error"]
    assert error["type"] == "ModelNotFoundException"
    assert error["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert error["status_code"] == 404
    assert error["exit_code"] == 1
    assert f"missing-{unique}" in error["message"]
    assert result.stderr.startswith("error: ")


def test_json_error_unreachable_server(runner: CliRunner):
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(
        app,
        ["--mlflow-uri", url, "models", "list", "-o", "json"],
        env={"MAESTRO_ML_RETRY_MAX_ELAPSED": "0.5"},
    )
    assert result.exit_code == 1
    error = strict_json(result.stdout)["error"]
    assert error["type"] == "TransportException"
    assert "status_code" not in error


def test_json_error_from_option_check(runner: CliRunner, mlflow_server_url: str):
    result = invoke(
        runner, mlflow_server_url, "models", "alias", "m", "a", "-o", "json"
    )
    assert result.exit_code == 1
    error = strict_json(result.stdout)["error"]
    assert error["type"] is None
    assert "--delete" in error["message"]


USAGE_ERRORS = [
    pytest.param(["experiments", "list", "--view", "bad"], "--view", id="bad-value"),
    pytest.param(["models", "get"], "Missing argument", id="missing-argument"),
    pytest.param(["models", "list", "--max-results", "0"], "--max-results", id="range"),
    pytest.param(["models", "list", "--output", "yaml"], "yaml", id="bad-choice"),
    pytest.param(["models", "nosuch"], "No such command", id="unknown-command"),
]


@pytest.mark.parametrize(("args", "expected"), USAGE_ERRORS)
def test_usage_error_one_line(
    runner: CliRunner, mlflow_server_url: str, args: list[str], expected: str
):
    result = invoke(runner, mlflow_server_url, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "--help' for usage" in lines[0]


@pytest.mark.parametrize(("args", "expected"), USAGE_ERRORS[:3])
@pytest.mark.parametrize("spelling", [["-o", "json"], ["--output=json"], ["-oJSON"]])
def test_usage_error_json(
    runner: CliRunner,
    mlflow_server_url: str,
    args: list[str],
    expected: str,
    spelling: list[str],
):
    result = invoke(runner, mlflow_server_url, *args, *spelling)
    assert result.exit_code == 2
    error = strict_json(result.stdout)["error"]
    assert error["exit_code"] == 2
    assert expected in error["message"]
    assert error["type"] in ("BadParameter", "MissingParameter")
    assert len(result.stderr.splitlines()) == 1


def test_no_arguments_prints_help(runner: CliRunner):
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 2
    assert "Commands" in result.stdout
    assert "error" not in result.stderr


def test_table_error_leaves_stdout_empty(runner: CliRunner, mlflow_server_url: str):
    result = invoke(runner, mlflow_server_url, "models", "get", "no such model here")
    assert result.exit_code == 1
    assert result.stdout == ""


def test_env_file_option(runner: CliRunner, mlflow_server_url: str, tmp_path: Path):
    env_file = tmp_path / "settings.env"
    env_file.write_text(f"MAESTRO_ML_MLFLOW_URI={mlflow_server_url}\n")
    closed = f"http://127.0.0.1:{free_port()}"
    # The file ranks below the environment, so the variable is removed here.
    result = runner.invoke(
        app,
        ["--env-file", str(env_file), "models", "list", "--max-results", "1"],
        env={"MAESTRO_ML_MLFLOW_URI": None, "MLFLOW_TRACKING_URI": None},
    )
    assert result.exit_code == 0, result.stderr

    missing = runner.invoke(
        app,
        ["--env-file", str(tmp_path / "none.env"), "--mlflow-uri", closed, "models"],
    )
    assert missing.exit_code == 2
    assert "--env-file" in missing.stderr


def start_and_close_stdout(url: str, *args: str) -> subprocess.Popen[bytes]:
    """Run the command line with a stdout pipe whose reader is already gone."""
    env = {**os.environ, "MAESTRO_ML_MLFLOW_URI": url}
    command = [sys.executable, "-m", "maestro_ml_async.cli", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout is not None
    process.stdout.close()
    return process


@pytest.mark.parametrize("output", ["table", "json"])
def test_broken_pipe_exits_quietly(mlflow_server_url: str, output: str):
    # `maestro-ml ... | head -1`: the reader closes the pipe before the output
    # is written. JSON output used to end in "error: BrokenPipeError" with exit
    # code 1, and rich's tables in a quiet exit code 1.
    args = ["models", "list", "--max-results", "3", "-o", output]
    process = start_and_close_stdout(mlflow_server_url, *args)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == BROKEN_PIPE_EXIT_CODE, stderr
    assert stderr == b""
