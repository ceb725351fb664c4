"""The end-to-end demo behind ``maestro-ml demo``.

In one async program, the demo creates an experiment and submits a
scikit-learn training job, then follows its status, logs and metrics at once.
It registers the trained model, moves it through Staging to Production with an
alias, and tags every version in one concurrent bulk call. It rolls the
version out on KServe as a canary, promotes it, sends one prediction, and
prints a summary. Each step is shown live with rich, or as one line per
change when the output is not a terminal.

With no MLflow URI configured (``MAESTRO_ML_MLFLOW_URI`` or
``MLFLOW_TRACKING_URI``), it starts a local MLflow server with its data under
``--root`` and the fake Kubernetes cluster with its local runner, and stops
both at the end. Otherwise it uses the configured MLflow server and kubeconfig.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from maestro_ml_async import AsyncMaestroClient
from maestro_ml_async.cli._text import printable

from ._platform import Platform, mlflow_uri_configured, open_platform
from ._steps import (
    DEFAULT_IMAGE,
    DemoState,
    deploy_and_predict,
    register_and_promote,
    submit,
    watch,
)
from ._view import DemoView, StepRecord

__all__ = [
    "DEFAULT_SCRIPT",
    "Platform",
    "mlflow_uri_configured",
    "open_platform",
    "run_demo",
]

EXPERIMENT_NAME = "maestro-demo-wine"
DEFAULT_SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_wine.py"
"""The training script in a source checkout of the project."""

Step = Callable[[DemoState], Awaitable[str]]
STEPS: list[tuple[str, Step]] = [
    ("create experiment, submit training job", submit),
    ("watch status, logs and metrics", watch),
    ("register, promote, alias, bulk tag", register_and_promote),
    ("canary deploy, promote, predict", deploy_and_predict),
]


# SIGTERM comes from `kill`, `timeout` and CI cancellations, SIGHUP from a
# closed terminal. Both end the demo like Ctrl-C does, so the local MLflow
# server and the fake cluster's processes (each in a session of its own, out
# of reach of the terminal's signals) are stopped instead of left running.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class StepFailed(Exception):
    """A demo step raised; the message names the step."""


class Terminated(Exception):
    """The demo received SIGTERM or SIGHUP and stopped what it had started."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def run_demo(
    root: str | Path = ".maestro-local",
    step_timeout: float = 300.0,
    *,
    script: str | Path | None = None,
    image: str = DEFAULT_IMAGE,
    epochs: int = 20,
    epoch_delay: float = 0.15,
    console: Console | None = None,
    debug: bool = False,
) -> int:
    """Run the demo and return the exit code: 0 when every step worked.

    Args:
        root: Folder for the local MLflow server's data (created if missing).
        step_timeout: Seconds each step may take.
        script: The training script; `DEFAULT_SCRIPT` by default.
        image: Container image of the training job (ignored by the local runner).
        epochs: Training epochs.
        epoch_delay: Seconds the training script sleeps after each epoch.
        console: Where to draw; a new console on stdout by default.
        debug: Also print the traceback of a failed step, to stderr.
    """
    console = console or Console()
    script_path = Path(script) if script is not None else DEFAULT_SCRIPT
    if not script_path.is_file():
        console.print(
            f"[bold red]error:[/] training script {script_path} not found; "
            "run the demo from a source checkout or pass --script"
        )
        return 1
    steps = [StepRecord(number, title) for number, (title, _) in enumerate(STEPS, 1)]
    steps.append(StepRecord(len(steps) + 1, "summary"))
    view = DemoView(steps)
    options = {
        "script": script_path,
        "image": image,
        "epochs": epochs,
        "epoch_delay": epoch_delay,
        "timeout": step_timeout,
    }
    try:
        state = asyncio.run(_run(Path(root), view, console, options))
    except StepFailed as exc:
        if debug:
            Console(stderr=True).print_exception()
        console.print()
        line = printable(str(exc), one_line=True)
        message = Text.assemble(("error: ", "bold red"), line)
        console.print(message, soft_wrap=True, highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print()
        console.print("[bold red]error:[/] interrupted")
        return 130
    except Terminated as exc:
        console.print()
        console.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return 128 + exc.signum
    console.print()
    console.print(summary_table(state, steps))
    return 0


async def _run(
    root: Path, view: DemoView, console: Console, options: dict[str, object]
) -> DemoState:
    received: list[int] = []
    with _cancel_on_signals(received):
        try:
            return await _run_steps(root, view, console, options)
        except asyncio.CancelledError:
            if received:
                raise Terminated(received[0]) from None
            raise


@contextlib.contextmanager
def _cancel_on_signals(received: list[int]) -> Iterator[None]:
    """Cancel the current task on the first SIGTERM or SIGHUP; record it.

    Later signals are ignored, so that they cannot cut the clean-up short.
    Outside the main thread, or where the loop has no signal handlers
    (Windows), the signals keep their usual effect.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stop(signum: int) -> None:
        if not received:
            received.append(signum)
            task.cancel()

    installed = []
    for signum in _STOP_SIGNALS:
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _run_steps(
    root: Path, view: DemoView, console: Console, options: dict[str, object]
) -> DemoState:
    timeout = float(str(options["timeout"]))
    live = None
    if console.is_terminal:
        live = Live(view, console=console, refresh_per_second=8, transient=False)
    else:
        view.plain = console
    with live if live is not None else contextlib.nullcontext():
        try:
            async with open_platform(root, EXPERIMENT_NAME, timeout) as platform:
                view.platform = platform.description
                view.note(platform.description)
                async with AsyncMaestroClient(config=platform.config) as client:
                    state = DemoState(client, view, **options)  # type: ignore[arg-type]
                    for record, (_, step) in zip(view.steps, STEPS, strict=False):
                        await _run_step(record, step, state, timeout)
                    view.steps[-1].state = "ok"
                    return state
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(f"local platform failed: {_describe(exc)}") from exc


async def _run_step(
    record: StepRecord, step: Step, state: DemoState, limit: float
) -> None:
    record.state = "running"
    record.started = time.monotonic()
    state.view.step_changed(record)
    try:
        with anyio.fail_after(limit):
            record.detail = await step(state)
    except Exception as exc:
        record.state = "failed"
        record.finished = time.monotonic()
        message = "timed out" if isinstance(exc, TimeoutError) else _describe(exc)
        record.detail = message
        state.view.step_changed(record)
        raise StepFailed(
            f"step {record.number} ({record.title}) failed: {message}"
        ) from exc
    record.state = "ok"
    record.finished = time.monotonic()
    state.view.step_changed(record)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no details"
    return f"{type(exc).__name__}: {text}"


def summary_table(state: DemoState, steps: list[StepRecord]) -> Table:
    """Build the closing table: run, metrics, version, URL and step durations."""
    table = Table(title="summary", title_justify="left")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(state.final_metrics.items()))
    rows = [
        ("training job", state.job_name),
        ("run", state.run_id),
        ("final metrics", metrics),
        ("model version", f"wine-classifier v{state.version} (alias champion)"),
        ("baseline version", f"wine-classifier v{state.baseline_version}"),
        ("versions tagged", str(state.versions_tagged)),
        ("deployment URL", state.deployment_url),
        ("canary split", state.canary_split),
        ("traffic after promotion", state.traffic),
        ("prediction for one sample", str(state.prediction)),
    ]
    for record in steps[:-1]:
        seconds = record.seconds or 0.0
        rows.append((f"step {record.number}: {record.title}", f"{seconds:.1f} s"))
    for item, value in rows:
        table.add_row(item, value)
    return table
