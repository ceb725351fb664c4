"""The root ``maestro-ml`` command and its global options."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ._common import State

try:
    # Recent typer releases (0.29 here) ship their own copy of click.
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on the click package
    from click.exceptions import ClickException  # type: ignore[assignment]


class RootGroup(TyperGroup):
    """The root command, which reports a usage error on one line.

    Typer draws a usage error as a box of several lines after the usage text.
    Here it is one ``error:`` line on stderr with exit code 2, and with
    ``--output json`` among the arguments also an ``{"error": {...}}`` object
    on stdout, as for any other failure.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        arguments = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(
                arguments,
                prog_name,
                complete_var,
                standalone_mode=False,
                **extra,
            )
        except ClickException as exc:
            code = exc.exit_code
            # Typer printed the help text when it created NoArgsIsHelpError.
            if type(exc).__name__ != "NoArgsIsHelpError":
                report_usage_error(exc, json_output_requested(arguments))
        except typer.Abort:
            code = 1
            report_usage_error(ClickException("aborted"), False)
        else:
            # Without standalone mode, click returns the code of typer.Exit,
            # and the command's return value (None) when it ends normally.
            code = result if isinstance(result, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


def json_output_requested(arguments: Sequence[str]) -> bool:
    """Return whether the arguments request ``--output json``.

    A usage error can stop parsing before the command's options are read, so
    the raw arguments are scanned instead.
    """
    for index, word in enumerate(arguments):
        if word == "--":
            return False
        if word in ("-o", "--output"):
            value = arguments[index + 1] if index + 1 < len(arguments) else ""
        elif word.startswith("--output="):
            value = word.partition("=")[2]
        elif word.startswith("-o") and len(word) > 2:
            value = word[2:]
        else:
            continue
        if value.lower() == "json":
            return True
    return False


def report_usage_error(exc: ClickException, as_json: bool) -> None:
    """Print `exc` as one ``error:`` line, with the command's help option."""
    from ._common import dumps_json, error_console, error_object, write_line
    from ._text import printable

    message = exc.format_message()
    command_path = getattr(getattr(exc, "ctx", None), "command_path", None)
    if command_path:
        message = f"{message.rstrip('.')}. Run '{command_path} --help' for usage."
    line = printable(message, one_line=True)
    if as_json:
        write_line(dumps_json({"error": error_object(line, exc.exit_code, exc)}))
    error_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)


app = typer.Typer(
    cls=RootGroup,
    name="maestro-ml",
    help=(
        "Work with an ML platform built on MLflow and Kubernetes: the model "
        "registry, experiments and runs, training jobs and KServe deployments."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            "--mlflow-uri",
            help=(
                "MLflow tracking server URL. Default: $MAESTRO_ML_MLFLOW_URI, "
                "then $MLFLOW_TRACKING_URI, then http://localhost:5000."
            ),
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Kubernetes namespace for jobs and deployments. "
            "Default: $MAESTRO_ML_NAMESPACE, then ml-platform.",
        ),
    ] = None,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            help="Path of the kubeconfig file. Default: $MAESTRO_ML_KUBE_CONFIG_PATH, "
            "then $KUBECONFIG, then ~/.kube/config, then in-cluster settings.",
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(
            "--context", help="Kubeconfig context. Default: the current context."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--request-timeout",
            help="Timeout of each HTTP request, in seconds. Default: 30.",
            min=0.001,
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="A .env file to read settings from, below the environment "
            "variables. Default: none (a .env file is not read on its own).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the traceback of a failure and log every request to stderr.",
        ),
    ] = False,
) -> None:
    """Global options; they go before the subcommand."""
    ctx.obj = State(
        mlflow_uri=mlflow_uri,
        namespace=namespace,
        kubeconfig=kubeconfig,
        context=context,
        request_timeout=timeout,
        debug=debug,
        env_file=env_file,
    )
    if debug:
        logging.basicConfig(
            level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s"
        )


def _register() -> None:
    from ._deployments import deployments_app
    from ._jobs import jobs_app
    from ._registry import models_app
    from ._tracking import experiments_app, runs_app

    app.add_typer(models_app, name="models")
    app.add_typer(experiments_app, name="experiments")
    app.add_typer(runs_app, name="runs")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(deployments_app, name="deployments")
    app.command("demo")(_demo_command)


def _demo_command(
    ctx: typer.Context,
    root: Annotated[
        str,
        typer.Option(
            "--root",
            help="Folder for the local MLflow server's database and artifacts.",
        ),
    ] = ".maestro-local",
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Time limit of each step, in seconds.", min=1),
    ] = 300.0,
    script: Annotated[
        str | None,
        typer.Option(
            "--script",
            help="Training script to run. Default: examples/train_wine.py of "
            "the source checkout.",
        ),
    ] = None,
    image: Annotated[
        str,
        typer.Option(
            "--image",
            help="Container image of the training job; the local runner ignores "
            "it, a real cluster needs Python with mlflow and scikit-learn.",
        ),
    ] = "python:3.11-slim",
    epochs: Annotated[
        int, typer.Option("--epochs", help="Training epochs.", min=1)
    ] = 20,
    epoch_delay: Annotated[
        float,
        typer.Option(
            "--epoch-delay",
            help="Seconds the training script pauses after each epoch, so the "
            "metrics can be watched arriving.",
            min=0,
        ),
    ] = 0.15,
) -> None:
    """Run the end-to-end demo: train, register, deploy and query a model.

    With no MLflow URI configured it starts a local MLflow server (data under
    --root) and the fake Kubernetes cluster, and stops both at the end.
    """
    from maestro_ml_async.demo import run_demo

    from ._common import get_state

    code = run_demo(
        root=root,
        step_timeout=timeout,
        script=script,
        image=image,
        epochs=epochs,
        epoch_delay=epoch_delay,
        debug=get_state(ctx).debug,
    )
    raise typer.Exit(code)


_register()


def run() -> None:
    """Run the application with the process arguments.

    A failure outside a command's client call (for example while printing its
    result) still ends with a one-line message and exit code 1. When stdout's
    reader goes away (``maestro-ml jobs logs x | head``), the command ends
    quietly with exit code 141.
    """
    import sys

    try:
        app()
    except BrokenPipeError:
        from ._common import BROKEN_PIPE_EXIT_CODE, silence_stdout

        silence_stdout()
        sys.exit(BROKEN_PIPE_EXIT_CODE)
    except Exception as exc:
        from ._common import describe_error, error_console
        from ._text import printable

        if "--debug" in sys.argv:
            error_console.print_exception()
        message = printable(describe_error(exc), one_line=True)
        error_console.print(f"error: {message}", markup=False, highlight=False)
        sys.exit(1)
