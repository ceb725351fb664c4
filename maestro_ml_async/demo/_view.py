"""The demo's live screen: the step list and what the running step is doing."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from maestro_ml_async.cli._text import printable

__all__ = ["DemoView", "StepRecord"]

_MARKS = {"pending": "[dim]·[/]", "running": "[yellow]…[/]", "ok": "[green]✓[/]"}


@dataclass
class StepRecord:
    """One demo step: its state, duration and a short result."""

    number: int
    title: str
    state: str = "pending"
    detail: str = ""
    started: float | None = None
    finished: float | None = None

    @property
    def seconds(self) -> float | None:
        """Duration so far, or in total once the step ended."""
        if self.started is None:
            return None
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started


@dataclass
class DemoView:
    """State rendered by `rich.live.Live` on every refresh."""

    steps: list[StepRecord]
    platform: str = ""
    job_status: str = "-"
    log_lines: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    metrics: dict[str, tuple[int, float]] = field(default_factory=dict)
    progress: Progress = field(
        default_factory=lambda: Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
    )
    show_progress: bool = False
    plain: Console | None = None
    """Console that gets one line per change when it is not a terminal.

    None while `rich.live.Live` redraws the screen. On a pipe or a file, Live
    draws nothing until it stops.
    """

    def note(self, text: str) -> None:
        """Print `text` as one plain line, unless a live view draws the screen."""
        if self.plain is not None:
            line = Text(printable(text, one_line=True))
            self.plain.print(line, soft_wrap=True, highlight=False)

    def set_job_status(self, status: str) -> None:
        """Show the training job's status, noting each change."""
        if status != self.job_status:
            self.job_status = status
            self.note(f"job status: {status}")

    def add_log_line(self, line: str) -> None:
        """Show one line of the training job's log."""
        self.log_lines.append(line)
        self.note(f"job log: {line}")

    def step_changed(self, step: StepRecord) -> None:
        """Note that `step` started, ended or failed."""
        text = f"step {step.number} ({step.title}): {step.state}"
        seconds = step.seconds
        if step.state != "running" and seconds is not None:
            text += f" after {seconds:.1f} s"
        if step.state == "ok" and step.detail:
            text += f": {step.detail}"
        self.note(text)

    def step_table(self) -> Table:
        """The list of steps with their marks, durations and results."""
        table = Table(title="maestro-ml demo", title_justify="left", expand=False)
        table.add_column("")
        table.add_column("step")
        table.add_column("time", justify="right")
        table.add_column("result", overflow="fold")
        for step in self.steps:
            mark = _MARKS.get(step.state, "[red]✗[/]")
            seconds = step.seconds
            table.add_row(
                mark,
                f"{step.number}. {step.title}",
                "" if seconds is None else f"{seconds:.1f} s",
                Text(printable(step.detail)),
            )
        return table

    def activity(self) -> RenderableType:
        """The job status, recent log lines and latest metrics."""
        metrics = Table(show_header=True, box=None, padding=(0, 2))
        metrics.add_column("metric")
        metrics.add_column("step", justify="right")
        metrics.add_column("value", justify="right")
        for key, (step, value) in sorted(self.metrics.items()):
            metrics.add_row(key, str(step), f"{value:.4f}")
        # The log lines, results and errors are Text, not markup, because a
        # job may print "[/]", which rich would reject with MarkupError.
        logs = "\n".join(printable(line) for line in self.log_lines)
        log_text = Text(logs or "(no log lines yet)")
        parts: list[RenderableType] = [
            Text.assemble("job status: ", (self.job_status, "bold")),
            Panel(log_text, title="job logs", title_align="left"),
            metrics,
        ]
        if self.show_progress:
            parts.append(self.progress)
        return Group(*parts)

    def __rich__(self) -> RenderableType:
        return Group(
            Text(self.platform, style="dim"),
            self.step_table(),
            Panel(self.activity(), title="activity", title_align="left"),
        )
