"""``maestro-ml models``: the model registry."""

from __future__ import annotations

import warnings
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from maestro_ml_async import AsyncMaestroClient

from ._common import (
    MaxResultsOption,
    OutputFormat,
    OutputOption,
    emit,
    emit_fields,
    error_console,
    fail,
    parse_version,
    run_command,
)

models_app = typer.Typer(
    help="Registered models and their versions, stages, aliases and tags.",
    no_args_is_help=True,
)

NameArgument = Annotated[str, typer.Argument(help="Registered model name.")]
VersionArgument = Annotated[
    str, typer.Argument(help="Version number, e.g. 3.", callback=parse_version)
]


def name_filter(name: str) -> tuple[str, bool]:
    """Return a version filter that matches model `name`, and whether it is exact.

    MLflow's filter parser does not unescape quotes inside a literal, so a
    name with both quote characters fits in no literal. It is then matched
    with LIKE, and the pattern has the one-character wildcard ``_`` in place
    of each quote and each backslash (the escape character of MySQL's LIKE).
    That pattern can match other names too, so the filter is not exact and
    the caller keeps only `name`.
    """
    if "'" not in name:
        return f"name = '{name}'", True
    if '"' not in name:
        return f'name = "{name}"', True
    pattern = name.replace("'", "_").replace("\\", "_")
    return f"name LIKE '{pattern}'", False


async def model_versions(
    client: AsyncMaestroClient, name: str, max_results: int | None = None
) -> list[Any]:
    """Fetch the versions of model `name`, newest first.

    Raises:
        ModelNotFoundException: The model does not exist.
    """
    await client.models.get(name)
    query, exact = name_filter(name)
    versions = await client.models.search_versions(
        query,
        order_by=["version_number DESC"],
        max_results=max_results if exact else None,
    )
    if not exact:
        versions = [v for v in versions if v.name == name]
    versions.sort(key=lambda v: int(v.version), reverse=True)
    return versions[:max_results]


def _model_rows(models: list[Any]) -> list[list[Any]]:
    rows = []
    for model in models:
        latest = model.latest_version
        production = model.production_version
        rows.append(
            [
                model.name,
                latest.version if latest else None,
                production.version if production else None,
                model.aliases,
                model.tags,
                model.last_updated_timestamp,
            ]
        )
    return rows


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    filter_string: Annotated[
        str | None,
        typer.Option(
            "--filter", help="MLflow search filter, e.g. \"name LIKE 'fraud-%'\"."
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", help="Sort clause, e.g. 'name DESC'; repeatable."),
    ] = None,
    max_results: MaxResultsOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List registered models (all pages), ordered by name by default."""

    async def body(client: AsyncMaestroClient) -> list[Any]:
        return await client.models.search(
            filter_string, order_by=order_by or None, max_results=max_results
        )

    models = run_command(ctx, body)
    emit(
        output,
        models,
        columns=("name", "latest", "production", "aliases", "tags", "updated"),
        rows=_model_rows(models),
        title=f"{len(models)} registered models",
    )


@models_app.command("get")
def get_model(
    ctx: typer.Context, name: NameArgument, output: OutputOption = OutputFormat.table
) -> None:
    """Show one registered model."""
    model = run_command(ctx, lambda client: client.models.get(name))
    latest = [f"v{v.version} ({v.current_stage})" for v in model.latest_versions]
    emit_fields(
        output,
        model,
        [
            ("name", model.name),
            ("description", model.description or None),
            ("latest versions", latest),
            ("aliases", model.aliases),
            ("tags", model.tags),
            ("created", model.creation_timestamp),
            ("updated", model.last_updated_timestamp),
        ],
    )


@models_app.command("versions")
def list_versions(
    ctx: typer.Context,
    name: NameArgument,
    max_results: MaxResultsOption = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List the versions of a model, newest first."""

    versions = run_command(
        ctx, lambda client: model_versions(client, name, max_results)
    )
    emit(
        output,
        versions,
        columns=("version", "stage", "status", "run id", "source", "tags", "created"),
        rows=[
            [
                v.version,
                v.current_stage,
                v.status,
                v.run_id,
                v.source,
                v.tags,
                v.creation_timestamp,
            ]
            for v in versions
        ],
        title=f"{name}: {len(versions)} versions",
    )


@models_app.command("transition")
def transition(
    ctx: typer.Context,
    name: NameArgument,
    version: VersionArgument,
    stage: Annotated[
        str,
        typer.Argument(help="Target stage: None, Staging, Production or Archived."),
    ],
    archive_existing: Annotated[
        bool,
        typer.Option(
            "--archive-existing",
            help="Move the other versions in that stage to Archived.",
        ),
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Move a version to a stage (stages are deprecated by MLflow but still work)."""

    async def body(client: AsyncMaestroClient) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return await client.models.transition_version_stage(
                name, version, stage, archive_existing_versions=archive_existing
            )

    moved = run_command(ctx, body)
    emit_fields(
        output,
        moved,
        [
            ("name", moved.name),
            ("version", moved.version),
            ("stage", moved.current_stage),
        ],
    )


@models_app.command("alias")
def alias(
    ctx: typer.Context,
    name: NameArgument,
    alias_name: Annotated[
        str, typer.Argument(metavar="ALIAS", help="Alias, e.g. champion.")
    ],
    version: Annotated[
        str | None,
        typer.Argument(
            help="Version the alias points to; omit with --delete.",
            callback=parse_version,
        ),
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Remove the alias instead of setting it.")
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Point an alias at a version, or remove it with --delete."""
    if delete == (version is not None):
        fail(
            "give either a VERSION to set the alias or --delete to remove it",
            output=output,
        )

    async def body(client: AsyncMaestroClient) -> dict[str, Any]:
        if delete:
            await client.models.delete_alias(name, alias_name)
            return {"name": name, "alias": alias_name, "version": None}
        assert version is not None
        await client.models.set_alias(name, alias_name, version)
        found = await client.models.get_version_by_alias(name, alias_name)
        return {"name": name, "alias": alias_name, "version": found.version}

    result = run_command(ctx, body)
    emit_fields(output, result, list(result.items()))


@models_app.command("tag")
def tag(
    ctx: typer.Context,
    name: NameArgument,
    key: Annotated[str, typer.Argument(help="Tag key.")],
    value: Annotated[str, typer.Argument(help="Tag value.")],
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            "-v",
            help="Tag this version instead of the model.",
            callback=parse_version,
        ),
    ] = None,
    all_versions: Annotated[
        bool,
        typer.Option(
            "--all-versions",
            help="Tag every version of the model concurrently, with a progress bar.",
        ),
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Set a tag on a model, on one version, or on all its versions."""
    if version is not None and all_versions:
        fail("give --version or --all-versions, not both", output=output)

    async def body(client: AsyncMaestroClient) -> dict[str, Any]:
        if all_versions:
            return await _tag_all_versions(client, name, key, value, output)
        if version is not None:
            await client.models.set_version_tag(name, version, key, value)
        else:
            await client.models.set_tag(name, key, value)
        return {"name": name, "version": version, "key": key, "value": value}

    result = run_command(ctx, body)
    emit_fields(output, result, list(result.items()))


async def _tag_all_versions(
    client: AsyncMaestroClient, name: str, key: str, value: str, output: OutputFormat
) -> dict[str, Any]:
    versions = await model_versions(client, name)
    pairs = [(name, v.version) for v in versions]
    # The bar goes to stderr, so stdout has only the result for a pipe's reader.
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=error_console,
        disable=output is OutputFormat.json,
        transient=False,
    ) as progress:
        task = progress.add_task(f"tagging {name}", total=len(pairs))

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        results = await client.models.set_version_tags(
            pairs, key, value, on_progress=advance
        )
    failed = [
        f"v{pair[1]}: {error}"
        for pair, error in zip(pairs, results, strict=True)
        if isinstance(error, BaseException)
    ]
    if failed:
        fail(
            f"{len(failed)} of {len(pairs)} versions not tagged; first: {failed[0]}",
            output=output,
        )
    return {"name": name, "versions": len(pairs), "key": key, "value": value}
