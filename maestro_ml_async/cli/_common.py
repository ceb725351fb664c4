"""Shared state, error handling and output of the command line."""

from __future__ import annotations

import asyncio
import enum
import json
import math
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from maestro_ml_async import (
    AsyncMaestroClient,
    Config,
    MaestroMLException,
    ValidationException,
)
from maestro_ml_async._validation import check_version

from ._text import printable

__all__ = [
    "MaxResultsOption",
    "OutputFormat",
    "OutputOption",
    "State",
    "check_timeout_needs_wait",
    "dumps_json",
    "emit",
    "fail",
    "parse_pairs",
    "parse_version",
    "run_command",
    "write_line",
]

T = TypeVar("T")


class _Console(Console):
    """A rich console that ends the command like `run_command` on a closed pipe."""

    def on_broken_pipe(self) -> None:
        """Exit with `BROKEN_PIPE_EXIT_CODE` (rich's own handler exits with 1)."""
        self.quiet = True
        silence_stdout()
        raise SystemExit(BROKEN_PIPE_EXIT_CODE)


console = _Console()
error_console = _Console(stderr=True)


class OutputFormat(str, enum.Enum):
    """Output format of a command: a rich table or JSON."""

    table = "table"
    json = "json"


MAX_LIST_CELL = 120
"""Maximum characters of one cell in a list table. JSON output has whole values."""

OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        "-o",
        help="Output format: 'table' for people, 'json' for scripts. A list "
        f"table shows at most {MAX_LIST_CELL} characters of a value, and JSON "
        "shows all of it.",
        case_sensitive=False,
    ),
]

MaxResultsOption = Annotated[
    int | None,
    typer.Option("--max-results", help="Stop after this many items.", min=1),
]


@dataclass
class State:
    """Global options, stored on the typer context by the root callback."""

    mlflow_uri: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    request_timeout: float | None = None
    debug: bool = False
    env_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def client(self) -> AsyncMaestroClient:
        """Create a client from the global options and the environment."""
        explicit: dict[str, Any] = {
            "mlflow_uri": self.mlflow_uri,
            "namespace": self.namespace,
            "kube_config_path": self.kubeconfig,
            "kube_context": self.context,
            "request_timeout": self.request_timeout,
        }
        explicit.update(self.overrides)
        settings = {key: value for key, value in explicit.items() if value is not None}
        config = Config.from_env(env_file=self.env_file, **settings)
        return AsyncMaestroClient(config=config)


def get_state(ctx: typer.Context) -> State:
    """Return the `State` of the root command."""
    state = ctx.find_root().obj
    if not isinstance(state, State):
        state = State()
        ctx.find_root().obj = state
    return state


def fail(
    message: str,
    code: int = 1,
    *,
    output: OutputFormat | None = None,
    error: BaseException | None = None,
) -> NoReturn:
    """Print a one-line error to stderr and exit with `code`.

    With `output` JSON the error is also written to stdout as a JSON object,
    ``{"error": {...}}``, so a script that parses stdout always gets JSON;
    `error_object` lists its fields. The object takes one line, so it also
    ends a stream of JSON lines cleanly.
    """
    line = printable(message, one_line=True)
    if output is OutputFormat.json:
        write_line(dumps_json({"error": error_object(line, code, error)}))
    text = Text.assemble(("error: ", "bold red"), line)
    error_console.print(text, soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def error_object(
    message: str, exit_code: int, error: BaseException | None
) -> dict[str, Any]:
    """Describe a failure for JSON output.

    The fields are ``message``, ``exit_code``, ``type`` (the exception class,
    or null for a failure the command found itself), and ``error_code``,
    ``status_code``, ``method`` and ``path`` from an HTTP error when it has them.
    """
    described: dict[str, Any] = {
        "message": message,
        "exit_code": exit_code,
        "type": type(error).__name__ if error is not None else None,
    }
    for name in ("error_code", "status_code", "method", "path"):
        value = getattr(error, name, None)
        if value is not None:
            described[name] = value
    return described


def run_command(
    ctx: typer.Context, body: Callable[[AsyncMaestroClient], Awaitable[T]]
) -> T:
    """Run `body` with a fresh client on a new event loop; map errors to exits.

    Any exception ends the command with exit code 1 and a one-line message on
    stderr; ``--debug`` prints the traceback as well. Ctrl-C exits with 130.
    A command whose ``--output`` is JSON also gets the error as JSON on stdout.
    """
    state = get_state(ctx)
    output = ctx.params.get("output")

    async def main() -> T:
        async with state.client() as client:
            return await body(client)

    try:
        return asyncio.run(main())
    except typer.Exit:
        raise
    except BrokenPipeError:
        silence_stdout()
        raise typer.Exit(BROKEN_PIPE_EXIT_CODE) from None
    except KeyboardInterrupt as exc:
        fail("interrupted", code=130, output=output, error=exc)
    except Exception as exc:
        if state.debug:
            error_console.print_exception()
        fail(describe_error(exc), output=output, error=exc)


BROKEN_PIPE_EXIT_CODE = 141
"""Exit code when the reader of stdout went away (``| head``): 128 + SIGPIPE."""


def silence_stdout() -> None:
    """Point stdout at the null device after its reader closed the pipe.

    Python flushes stdout once more at exit, and that flush would raise
    BrokenPipeError again and print an "Exception ignored" message.
    """
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def describe_error(exc: BaseException) -> str:
    """Return a one-line description of an exception for the error message."""
    if isinstance(exc, MaestroMLException):
        return str(exc)
    text = str(exc) or "no details"
    return f"{type(exc).__name__}: {text}"


def parse_pairs(values: Sequence[str] | None, option: str) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` options into a dict.

    Raises:
        typer.BadParameter: An item has no ``=`` or an empty key.
    """
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(
                f"expected KEY=VALUE, got {item!r}", param_hint=option
            )
        pairs[key] = value
    return pairs


def check_timeout_needs_wait(ctx: typer.Context, *, wait: bool) -> None:
    """Reject a --timeout given without --wait instead of ignoring it.

    Raises:
        typer.BadParameter: The command line or the environment set
            --timeout while --wait is off.
    """
    source = ctx.get_parameter_source("timeout")
    # Typer bundles its own click, so the enum is compared by member name.
    if wait or source is None or source.name == "DEFAULT":
        return
    raise typer.BadParameter(
        "--timeout only limits --wait; add --wait or drop --timeout",
        param_hint="--timeout",
    )


def parse_version(value: str | None) -> str | None:
    """Check a model version argument, so a bad one is a usage error (exit 2).

    Raises:
        typer.BadParameter: The value is not a positive integer.
    """
    if value is None:
        return None
    try:
        return check_version(value)
    except ValidationException:
        raise typer.BadParameter(
            f"expected a positive integer version such as 3, got {value!r}"
        ) from None


def to_jsonable(value: Any) -> Any:
    """Convert pydantic models, datetimes, enums and floats to JSON-ready values.

    NaN and the infinities become the strings ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"``, because JSON has no literal for them and MLflow stores
    NaN metrics.
    """
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return to_jsonable(dump(mode="json", exclude={"raw"}))
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def dumps_json(value: Any, indent: int | None = None) -> str:
    """Serialize `value` as strict JSON (no NaN or Infinity literals)."""
    return json.dumps(to_jsonable(value), indent=indent, default=str, allow_nan=False)


def print_json(value: Any) -> None:
    """Write `value` as indented JSON to stdout."""
    write_line(dumps_json(value, indent=2))


def write_line(text: str) -> None:
    """Write one line to stdout and flush it, so a pipe's reader sees it at once.

    Raises:
        typer.Exit: With `BROKEN_PIPE_EXIT_CODE` when the reader went away.
    """
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        raise typer.Exit(BROKEN_PIPE_EXIT_CODE) from None


def clock_time() -> str:
    """Return the current UTC time as ``HH:MM:SS``, for the rows of a watch."""
    return datetime.now(timezone.utc).strftime("%H:%M:%S")


def cell(value: Any) -> str:
    """Format one table cell, with control characters escaped."""
    return printable(_cell_text(value))


def _cell_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={item}" for key, item in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell_text(item) for item in value) or "-"
    return str(value)


def shorten(text: str, limit: int) -> str:
    """Cut `text` to `limit` characters, ending with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def emit(
    output: OutputFormat,
    value: Any,
    *,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    max_cell: int | None = MAX_LIST_CELL,
) -> None:
    """Print `value` as JSON, or `rows` as a table with `columns`.

    A table cell longer than `max_cell` characters is cut, so that one long
    tag value or description cannot stretch a row over hundreds of lines.
    """
    if output is OutputFormat.json:
        print_json(value)
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        texts = [cell(item) for item in row]
        if max_cell is not None:
            texts = [shorten(text, max_cell) for text in texts]
        # Text, unlike str, is not parsed as rich markup, so a tag value such
        # as "[/]" is shown as it is instead of raising MarkupError.
        table.add_row(*(Text(text) for text in texts))
    console.print(table)


def emit_fields(
    output: OutputFormat, value: Any, fields: Sequence[tuple[str, Any]]
) -> None:
    """Print one object as JSON, or as a two-column field/value table.

    The table shows every value whole, because it is where a long value is read.
    """
    emit(output, value, columns=("field", "value"), rows=fields, max_cell=None)
