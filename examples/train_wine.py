"""Train a wine classifier and log it to MLflow: the demo's training job.

The script runs inside a training job's container (or, with the fake cluster's
local runner, as a local process). It reads the tracking server from
``MLFLOW_TRACKING_URI`` and the experiment from ``MLFLOW_EXPERIMENT_NAME``,
which the SDK sets in every job container, and uses the ``mlflow`` package,
which is fine here because this is the job's process, not the SDK.

It trains an `SGDClassifier` on scikit-learn's bundled wine data set (no
download) one epoch at a time with ``partial_fit``. It logs the parameters and
the per-epoch ``train_loss``, ``train_accuracy`` and ``val_accuracy``. Then it
saves the fitted pipeline as an MLflow model under the run's ``model`` artifact
folder, where ``client.models.register(run_id, "model", name)`` finds it, and
a majority-class baseline under ``baseline`` (the demo's stable version).
The run is tagged ``maestro.job_name`` with ``MAESTRO_JOB_NAME`` so the caller
can find it, and the script prints a line ``run_id=<id>`` once the model is saved.

Usage::

    python examples/train_wine.py --epochs=20 --alpha=0.0005 --epoch-delay=0.1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from sklearn.datasets import load_wine
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the training parameters (the SDK passes ``params`` as ``--key=value``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--alpha", type=float, default=0.0005, help="L2 penalty")
    parser.add_argument("--learning-rate", type=float, default=0.01, help="eta0")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument(
        "--epoch-delay",
        type=float,
        default=0.0,
        help="seconds to sleep after each epoch, so that a watcher sees progress",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train, log and save the model; return the exit code."""
    args = parse_args(argv)
    import mlflow

    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", "wine")
    mlflow.set_experiment(experiment)

    features, labels = load_wine(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        features, labels, test_size=0.25, random_state=args.seed, stratify=labels
    )
    scaler = StandardScaler().fit(x_train)
    x_train_scaled = scaler.transform(x_train)
    x_val_scaled = scaler.transform(x_val)
    classes = np.unique(labels)
    classifier = SGDClassifier(
        loss="log_loss",
        alpha=args.alpha,
        learning_rate="constant",
        eta0=args.learning_rate,
        random_state=args.seed,
    )

    tags = {"maestro.job_name": os.environ.get("MAESTRO_JOB_NAME", "local")}
    with mlflow.start_run(tags=tags) as run:
        print(f"run {run.info.run_id} in experiment {experiment!r}", flush=True)
        mlflow.log_params(
            {
                "epochs": args.epochs,
                "alpha": args.alpha,
                "learning_rate": args.learning_rate,
                "seed": args.seed,
                "train_rows": len(x_train),
                "features": features.shape[1],
            }
        )
        for epoch in range(args.epochs):
            classifier.partial_fit(x_train_scaled, y_train, classes=classes)
            train_loss = log_loss(
                y_train, classifier.predict_proba(x_train_scaled), labels=classes
            )
            train_accuracy = accuracy_score(y_train, classifier.predict(x_train_scaled))
            val_accuracy = accuracy_score(y_val, classifier.predict(x_val_scaled))
            mlflow.log_metrics(
                {
                    "train_loss": float(train_loss),
                    "train_accuracy": float(train_accuracy),
                    "val_accuracy": float(val_accuracy),
                },
                step=epoch,
            )
            print(
                f"epoch {epoch + 1}/{args.epochs} loss={train_loss:.4f} "
                f"val_accuracy={val_accuracy:.3f}",
                flush=True,
            )
            if args.epoch_delay:
                time.sleep(args.epoch_delay)

        pipeline = Pipeline([("scale", scaler), ("classify", classifier)])
        save_model(pipeline, "model", x_val[:2])
        baseline = DummyClassifier(strategy="most_frequent").fit(x_train, y_train)
        baseline_accuracy = accuracy_score(y_val, baseline.predict(x_val))
        mlflow.log_metric("baseline_val_accuracy", float(baseline_accuracy))
        save_model(baseline, "baseline", x_val[:2])
        print("models saved to the run's 'model' and 'baseline' folders", flush=True)
        print(f"run_id={run.info.run_id}", flush=True)
    return 0


def save_model(model: object, artifact_path: str, example: object) -> None:
    """Save `model` in MLflow's format and log it under `artifact_path`."""
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        model_dir = os.path.join(folder, artifact_path)
        mlflow.sklearn.save_model(
            model,
            model_dir,
            input_example=example,
            serialization_format="cloudpickle",
        )
        mlflow.log_artifacts(model_dir, artifact_path=artifact_path)


if __name__ == "__main__":
    sys.exit(main())
