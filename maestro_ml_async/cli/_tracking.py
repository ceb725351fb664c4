"""``maestro-ml experiments`` and ``maestro-ml runs``: the tracking server."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from maestro_ml_async import AsyncMaestroClient, ExperimentNotFoundException

from ._common import (
    MaxResultsOption,
    OutputFormat,
    OutputOption,
    emit,
    emit_fields,
    run_command,
)

experiments_app = typer.Typer(
    help="Experiments of the tracking server.", no_args_is_help=True
)
runs_app = typer.Typer(
    help="Runs, with their metrics, params and tags.", no_args_is_help=True
)

VIEW_TYPES = {"active": "ACTIVE_ONLY", "deleted": "DELETED_ONLY", "all": "ALL"}

FilterOption = Annotated[
    str | None,
    typer.Option("--filter", help="MLflow search filter, e.g. \"name LIKE 'wine-%'\"."),
]
ViewOption = Annotated[
    str,
    typer.Option(
        "--view", help="Which lifecycle stage to show: active, deleted or all."
    ),
]


def _view_type(view: str) -> Any:
    from maestro_ml_async.types.tracking import ViewType

    try:
        return ViewType(VIEW_TYPES[view.lower()])
    except KeyError:
        raise typer.BadParameter(
            f"expected active, deleted or all, got {view!r}", param_hint="--view"
        ) from None


@experiments_app.command("list")
def list_experiments(
    ctx: typer.Context,
    filter_string: FilterOption = None,
    view: ViewOption = "active",
    max_results: MaxResultsOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List experiments (all pages)."""
    view_type = _view_type(view)

    async def body(client: AsyncMaestroClient) -> list[Any]:
        return await client.experiments.search(
            filter_string, view_type=view_type, max_results=max_results
        )

    experiments = run_command(ctx, body)
    emit(
        output,
        experiments,
        columns=("id", "name", "stage", "artifact location", "tags", "created"),
        rows=[
            [
                e.experiment_id,
                e.name,
                e.lifecycle_stage,
                e.artifact_location,
                e.tags,
                e.creation_time,
            ]
            for e in experiments
        ],
        title=f"{len(experiments)} experiments",
    )


@experiments_app.command("get")
def get_experiment(
    ctx: typer.Context,
    experiment: Annotated[
        str, typer.Argument(help="Experiment id, or name with --by-name.")
    ],
    by_name: Annotated[
        bool, typer.Option("--by-name", help="Look the experiment up by its name.")
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show one experiment."""

    async def body(client: AsyncMaestroClient) -> Any:
        if not by_name:
            return await client.experiments.get(experiment)
        found = await client.experiments.get_by_name(experiment)
        if found is None:
            raise ExperimentNotFoundException(
                f"experiment named {experiment!r} not found"
            )
        return found

    found = run_command(ctx, body)
    emit_fields(
        output,
        found,
        [
            ("id", found.experiment_id),
            ("name", found.name),
            ("stage", found.lifecycle_stage),
            ("artifact location", found.artifact_location),
            ("tags", found.tags),
            ("created", found.creation_time),
            ("updated", found.last_update_time),
        ],
    )


def _metrics(run: Any) -> dict[str, str]:
    return {metric.key: f"{metric.value:.4g}" for metric in run.data.metrics}


@runs_app.command("list")
def list_runs(
    ctx: typer.Context,
    experiment_ids: Annotated[
        list[str],
        typer.Option("--experiment", "-e", help="Experiment id to search; repeatable."),
    ],
    filter_string: FilterOption = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option(
            "--order-by", help="Sort clause, e.g. 'metrics.accuracy DESC'; repeatable."
        ),
    ] = None,
    view: ViewOption = "active",
    max_results: MaxResultsOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List the runs of one or more experiments (all pages)."""
    view_type = _view_type(view)

    async def body(client: AsyncMaestroClient) -> list[Any]:
        # MLflow returns no runs for a search of an unknown experiment id, so
        # a mistyped id would print an empty table. Reading each experiment
        # first turns it into a not-found error.
        experiments = [client.experiments.get(number) for number in experiment_ids]
        await asyncio.gather(*experiments)
        return await client.runs.search(
            experiment_ids,
            filter_string,
            order_by=order_by or None,
            view_type=view_type,
            max_results=max_results,
        )

    runs = run_command(ctx, body)
    emit(
        output,
        runs,
        columns=("run id", "name", "status", "started", "metrics"),
        rows=[
            [
                run.info.run_id,
                run.info.run_name,
                run.info.status,
                run.info.start_time,
                _metrics(run),
            ]
            for run in runs
        ],
        title=f"{len(runs)} runs",
    )


@runs_app.command("get")
def get_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show one run with its latest metrics, params and tags."""
    run = run_command(ctx, lambda client: client.runs.get(run_id))
    user_tags = {
        key: value
        for key, value in run.data.tags.items()
        if not key.startswith("mlflow.")
    }
    emit_fields(
        output,
        run,
        [
            ("run id", run.info.run_id),
            ("name", run.info.run_name),
            ("experiment id", run.info.experiment_id),
            ("status", run.info.status),
            ("started", run.info.start_time),
            ("ended", run.info.end_time),
            ("artifact uri", run.info.artifact_uri),
            ("metrics", _metrics(run)),
            ("params", run.data.params),
            ("tags", user_tags),
        ],
    )
