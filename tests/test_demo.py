"""The end-to-end demo, on the local platform and on a configured one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from maestro_ml_async.demo import DEFAULT_SCRIPT, run_demo
from maestro_ml_async.demo._platform import ARTIFACT_CLAIM


@pytest.mark.timeout(420)
def test_demo_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MAESTRO_ML_MLFLOW_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    output = io.StringIO()
    console = Console(file=output, width=120, force_terminal=False)
    code = run_demo(
        root=tmp_path / "local",
        step_timeout=240,
        epochs=5,
        epoch_delay=0.05,
        console=console,
    )
    text = output.getvalue()
    assert code == 0, text[-3000:]
    assert "summary" in text
    assert "wine-classifier v2 (alias champion)" in text
    assert "baseline version" in text
    assert "20% wine-classifier-predictor-00002" in text
    assert "80%" in text
    assert "prediction for one sample" in text
    assert "[0]" in text
    assert "val_accuracy=" in text
    assert (tmp_path / "local" / "mlflow" / "mlflow.db").is_file()
    artifacts = list((tmp_path / "local" / "mlflow" / "artifacts").rglob("MLmodel"))
    assert len(artifacts) == 2


def test_demo_missing_script(tmp_path: Path):
    output = io.StringIO()
    code = run_demo(
        root=tmp_path, script=tmp_path / "nope.py", console=Console(file=output)
    )
    assert code == 1
    assert "not found" in output.getvalue()
    assert DEFAULT_SCRIPT.name == "train_wine.py"


def test_demo_failed_step_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MAESTRO_ML_MLFLOW_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    gate = tmp_path / "gate"
    broken = tmp_path / "broken.py"
    # "[/]" is rich markup that closes nothing: as a log line on the live
    # screen it used to raise MarkupError instead of showing the text. The
    # job waits for the gate file, so the test can read the output while the
    # step runs.
    broken.write_text(
        "import pathlib, sys, time\n"
        "print('[/] boom', flush=True)\n"
        f"while not pathlib.Path({str(gate)!r}).exists():\n"
        "    time.sleep(0.05)\n"
        "sys.exit(3)\n"
    )
    output = io.StringIO()
    result: list[int] = []

    def demo() -> None:
        console = Console(file=output, width=200)
        code = run_demo(
            root=tmp_path / "local", step_timeout=120, script=broken, console=console
        )
        result.append(code)

    thread = threading.Thread(target=demo)
    thread.start()
    try:
        # The output is not a terminal, so each change is a line as it happens.
        logged = wait_until(lambda: "job log: [/] boom" in output.getvalue(), 150)
        running = output.getvalue()
    finally:
        gate.touch()
        thread.join(150)
    text = output.getvalue()
    assert logged, text[-3000:]
    assert "step 1 (create experiment, submit training job): ok after" in running
    assert "step 2 (watch status, logs and metrics): running" in running
    assert "job status: running" in running
    assert "): failed" not in running
    assert result == [1], text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "step 2" in errors[0]
    assert "step 2 (watch status, logs and metrics): failed after" in text


@pytest.mark.parametrize("debug", [False, True])
def test_demo_debug_traceback(debug: bool):
    from typer.testing import CliRunner

    from maestro_ml_async.cli._app import app
    from maestro_ml_async.testing.mlflow_server import free_port

    # A configured MLflow server that is down fails step 1 at once.
    env = {
        "MAESTRO_ML_MLFLOW_URI": f"http://127.0.0.1:{free_port()}",
        "MAESTRO_ML_RETRY_MAX_ELAPSED": "0.5",
    }
    args = ["--debug", "demo"] if debug else ["demo"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "step 1" in errors[0]
    assert ("Traceback" in result.stderr) is debug
    assert "Traceback" not in result.stdout


def start_fake_cluster(
    kubeconfig: Path, artifacts: Path
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start the fake cluster as a process of its own, as a real cluster would be."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maestro_ml_async.testing",
            "--local-runner",
            "--kubeconfig",
            str(kubeconfig),
            "--pvc-root",
            f"{ARTIFACT_CLAIM}={artifacts}",
            "--tick",
            "0.02",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout = process.stdout
    assert stdout is not None
    found: dict[str, str] = {}
    printed_all = threading.Event()

    def read_address() -> None:
        # The process prints kubeconfig=, context= and server= lines, in order.
        for line in stdout:
            key, _, value = line.strip().partition("=")
            found[key] = value
            if key == "server":
                break
        printed_all.set()

    threading.Thread(target=read_address, daemon=True).start()
    printed_all.wait(60)
    if "server" not in found:
        stop_process_group(process)
        raise AssertionError(f"the fake cluster printed no address: {found}")
    return process, found


def stop_process_group(process: subprocess.Popen[str]) -> None:
    # The cluster's local runner starts model servers in the same group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)


@pytest.mark.timeout(420)
def run_demo_quietly(root: Path) -> tuple[int, str]:
    output = io.StringIO()
    console = Console(file=output, width=120, force_terminal=False)
    code = run_demo(
        root=root, step_timeout=240, epochs=3, epoch_delay=0.05, console=console
    )
    return code, output.getvalue()


def test_demo_on_configured_platform(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_session: tuple[str, Path | None],
) -> None:
    # With an MLflow URI and a kubeconfig set, the demo starts nothing of its
    # own: it uses the session's MLflow server and a cluster in another process.
    url, artifacts = mlflow_session
    if artifacts is None:
        pytest.skip("the session's MLflow artifact folder is unknown")
    process, cluster = start_fake_cluster(tmp_path / "kubeconfig", artifacts)

    try:
        monkeypatch.setenv("MAESTRO_ML_MLFLOW_URI", url)
        monkeypatch.setenv("MAESTRO_ML_KUBE_CONFIG_PATH", cluster["kubeconfig"])
        monkeypatch.setenv("MAESTRO_ML_KUBE_CONTEXT", cluster["context"])
        monkeypatch.setenv("MAESTRO_ML_NAMESPACE", "ml-platform")
        storage_map = {"mlflow-artifacts:/": f"pvc://{ARTIFACT_CLAIM}/"}
        monkeypatch.setenv("MAESTRO_ML_STORAGE_URI_MAP", json.dumps(storage_map))
        code, text = run_demo_quietly(tmp_path / "local")
        # The cluster keeps the first run's deployment, which a second run
        # used to fail on in step 4 ("already exists").
        second_code, second_text = run_demo_quietly(tmp_path / "local")
    finally:
        stop_process_group(process)
    assert code == 0, text[-3000:]
    assert f"MLflow at {url}" in text
    assert "alias champion" in text
    assert "prediction for one sample" in text
    assert "val_accuracy=" in text
    assert second_code == 0, second_text[-3000:]
    assert "prediction for one sample" in second_text
    # No local MLflow server was started.
    assert not (tmp_path / "local" / "mlflow").exists()


def processes_mentioning(marker: str, exclude: int) -> list[int]:
    """Return the processes whose command line contains `marker`, but `exclude`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (exclude, os.getpid()):
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in command:
            found.append(int(entry.name))
    return found


def wait_until(condition: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
@pytest.mark.timeout(240)
def test_demo_sigterm_stops_platform(tmp_path: Path):
    # The MLflow server and the job's process run in sessions of their own, so
    # a SIGTERM that ended only the demo used to leave them running.
    root = tmp_path / "sigterm-root"
    script = tmp_path / f"slow_train_{uuid.uuid4().hex[:8]}.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MAESTRO_ML_MLFLOW_URI", "MLFLOW_TRACKING_URI")
    }
    command = [sys.executable, "-m", "maestro_ml_async.cli", "demo"]
    command += ["--root", str(root), "--script", str(script), "--timeout", "200"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    # The demo's own command line names the root and the script too. The job's
    # process runs the script from the ConfigMap volume, and the MLflow server
    # stores its database under the root.
    job_marker = f"maestro-code/{script.name}"

    def job_processes() -> list[int]:
        return processes_mentioning(job_marker, process.pid)

    def server_processes() -> list[int]:
        return processes_mentioning(str(root), process.pid)

    try:
        assert wait_until(job_processes, 150), "the training job did not start"
        assert server_processes(), "no MLflow server runs under the root"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(15)
    text = output.decode(errors="replace")
    assert process.returncode == 128 + signal.SIGTERM, text[-3000:]
    assert "error: terminated by SIGTERM" in text
    assert wait_until(lambda: not server_processes(), 15)
    assert wait_until(lambda: not job_processes(), 15)
