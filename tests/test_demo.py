"""The end-to-end demo on the local platform: MLflow server plus fake cluster."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from maestro_ml_async.demo import DEFAULT_SCRIPT, run_demo


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
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nprint('boom')\nsys.exit(3)\n")
    output = io.StringIO()
    code = run_demo(
        root=tmp_path / "local",
        step_timeout=120,
        script=broken,
        console=Console(file=output, width=200),
    )
    text = output.getvalue()
    assert code == 1, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "step 2" in errors[0]
