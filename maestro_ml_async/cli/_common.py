"""Shared state, error handling and output of the command line."""

from __future__ import annotations

import asyncio
import enum
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from maestro_ml_async import AsyncMaestroClient, Config, MaestroMLException

__all__ = [
    "MaxResultsOption",
    "OutputFormat",
    "OutputOption",
    "State",
    "emit",
    "fail",
    "parse_pairs",
    "run_command",
]

T = TypeVar("T")

console = Console()
error_console = Console(stderr=True)


class OutputFormat(str, enum.Enum):
    """Output format of a command: a rich table or JSON."""

    table = "table"
    json = "json"


OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output",
        "-o",
        help="Output format: 'table' for people, 'json' for scripts.",
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
        return AsyncMaestroClient(config=Config.from_env(**settings))


def get_state(ctx: typer.Context) -> State:
    """Return the `State` of the root command."""
    state = ctx.find_root().obj
    if not isinstance(state, State):
        state = State()
        ctx.find_root().obj = state
    return state


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a one-line error to stderr and exit with `code`."""
    text = Text.assemble(("error: ", "bold red"), _one_line(message))
    error_console.print(text, soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def run_command(
    ctx: typer.Context, body: Callable[[AsyncMaestroClient], Awaitable[T]]
) -> T:
    """Run `body` with a fresh client on a new event loop; map errors to exits.

    Any exception ends the command with exit code 1 and a one-line message on
    stderr; ``--debug`` prints the traceback as well. Ctrl-C exits with 130.
    """
    state = get_state(ctx)

    async def main() -> T:
        async with state.client() as client:
            return await body(client)

    try:
        return asyncio.run(main())
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as exc:
        if state.debug:
            error_console.print_exception()
        fail(describe_error(exc))


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


def to_jsonable(value: Any) -> Any:
    """Convert pydantic models, datetimes and enums to JSON-ready values."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude={"raw"})
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def print_json(value: Any) -> None:
    """Write `value` as indented JSON to stdout."""
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, default=str) + "\n")
    sys.stdout.flush()


def cell(value: Any) -> str:
    """Format one table cell."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={item}" for key, item in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(item) for item in value) or "-"
    return str(value)


def emit(
    output: OutputFormat,
    value: Any,
    *,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
) -> None:
    """Print `value` as JSON, or `rows` as a table with `columns`."""
    if output is OutputFormat.json:
        print_json(value)
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(cell(item) for item in row))
    console.print(table)


def emit_fields(
    output: OutputFormat, value: Any, fields: Sequence[tuple[str, Any]]
) -> None:
    """Print one object as JSON, or as a two-column field/value table."""
    emit(output, value, columns=("field", "value"), rows=fields)
