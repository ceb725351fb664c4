"""``maestro-ml deployments``: registry models served on KServe."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from maestro_ml_async import AsyncMaestroClient

from ._common import (
    OutputFormat,
    OutputOption,
    cell,
    check_timeout_needs_wait,
    clock_time,
    console,
    dumps_json,
    emit,
    emit_fields,
    parse_version,
    print_json,
    run_command,
    write_line,
)

deployments_app = typer.Typer(
    help="KServe InferenceServices that serve registry model versions.",
    no_args_is_help=True,
)

DeploymentArgument = Annotated[str, typer.Argument(help="Deployment name.")]
WaitOption = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until the deployment is ready.")
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Time limit of --wait in seconds, a usage error without --wait.",
        min=0.001,
    ),
]


def _traffic(deployment: Any) -> str:
    parts = [
        f"{target.revision_name or '?'} {target.percent}% ({target.role})"
        for target in deployment.traffic
    ]
    return ", ".join(parts) or "-"


def _fields(deployment: Any) -> list[tuple[str, Any]]:
    unmet = [condition.describe() for condition in deployment.unmet_conditions()]
    return [
        ("name", deployment.name),
        ("namespace", deployment.namespace),
        ("model", f"{deployment.model_name} v{deployment.model_version}"),
        ("url", deployment.url),
        ("ready", deployment.ready),
        ("rollout", deployment.rollout_state),
        ("traffic", _traffic(deployment)),
        ("replicas", f"{deployment.min_replicas} to {deployment.max_replicas}"),
        ("storage uri", deployment.storage_uri),
        ("unmet conditions", unmet),
        ("created", deployment.created_at),
    ]


def _change_and_show(
    ctx: typer.Context,
    change: Callable[[AsyncMaestroClient], Awaitable[Any]],
    *,
    wait: bool,
    timeout: float,
    output: OutputFormat,
) -> None:
    """Run `change`, wait for readiness if asked, and print the deployment."""
    check_timeout_needs_wait(ctx, wait=wait)

    async def body(client: AsyncMaestroClient) -> Any:
        deployment = await change(client)
        if not wait:
            return deployment
        return await client.deployment.wait_ready(
            deployment.name,
            timeout=timeout,
            namespace=deployment.namespace,
            min_generation=deployment.generation,
        )

    deployment = run_command(ctx, body)
    emit_fields(output, deployment, _fields(deployment))


@deployments_app.command("create")
def create(
    ctx: typer.Context,
    name: DeploymentArgument,
    model: Annotated[str, typer.Option("--model", "-m", help="Registered model name.")],
    version: Annotated[
        str | None,
        typer.Option(
            "--version", "-v", help="Model version to serve.", callback=parse_version
        ),
    ] = None,
    alias: Annotated[
        str | None, typer.Option("--alias", help="Serve the version with this alias.")
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Serve the newest version in this stage."),
    ] = None,
    replicas: Annotated[
        int, typer.Option("--replicas", help="Minimum replicas.", min=0)
    ] = 1,
    max_replicas: Annotated[
        int | None, typer.Option("--max-replicas", help="Maximum replicas.", min=1)
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy", help="Rollout strategy: rolling, canary or blue_green."
        ),
    ] = "rolling",
    canary_percent: Annotated[
        int | None,
        typer.Option(
            "--canary-percent",
            help="With --strategy canary: percent of traffic for the new version.",
            min=0,
            max=100,
        ),
    ] = None,
    model_format: Annotated[
        str,
        typer.Option("--format", help="Model format: mlflow, sklearn, xgboost, ..."),
    ] = "mlflow",
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Deploy a model version (pick it with --version, --alias or --stage)."""

    def deploy(client: AsyncMaestroClient) -> Awaitable[Any]:
        return client.deployment.deploy(
            name,
            model,
            model_version=version,
            alias=alias,
            stage=stage,
            replicas=replicas,
            max_replicas=max_replicas,
            strategy=strategy,
            canary_traffic_percent=canary_percent,
            model_format=model_format,
        )

    _change_and_show(ctx, deploy, wait=wait, timeout=timeout, output=output)


@deployments_app.command("get")
def get(
    ctx: typer.Context,
    name: DeploymentArgument,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show a deployment with its traffic split and conditions."""
    deployment = run_command(ctx, lambda client: client.deployment.get_deployment(name))
    emit_fields(output, deployment, _fields(deployment))


@deployments_app.command("list")
def list_deployments(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Only deployments of this model."),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List the deployments of the namespace."""

    async def body(client: AsyncMaestroClient) -> list[Any]:
        return await client.deployment.list_deployments(model_name=model)

    deployments = run_command(ctx, body)
    emit(
        output,
        deployments,
        columns=("name", "model", "version", "ready", "rollout", "traffic", "url"),
        rows=[
            [
                d.name,
                d.model_name,
                d.model_version,
                d.ready,
                d.rollout_state,
                _traffic(d),
                d.url,
            ]
            for d in deployments
        ],
        title=f"{len(deployments)} deployments",
    )


@deployments_app.command("scale")
def scale(
    ctx: typer.Context,
    name: DeploymentArgument,
    replicas: Annotated[int, typer.Argument(help="New minimum replica count.", min=0)],
    max_replicas: Annotated[
        int | None, typer.Option("--max-replicas", help="New maximum.", min=1)
    ] = None,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Change the replica count of a deployment."""

    _change_and_show(
        ctx,
        lambda client: client.deployment.update(
            name, replicas=replicas, max_replicas=max_replicas
        ),
        wait=wait,
        timeout=timeout,
        output=output,
    )


@deployments_app.command("promote")
def promote(
    ctx: typer.Context,
    name: DeploymentArgument,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Send all traffic to the canary revision."""

    _change_and_show(
        ctx,
        lambda client: client.deployment.promote(name),
        wait=wait,
        timeout=timeout,
        output=output,
    )


@deployments_app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: DeploymentArgument,
    wait: WaitOption = False,
    timeout: TimeoutOption = 600.0,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Send all traffic back to the previous revision."""

    _change_and_show(
        ctx,
        lambda client: client.deployment.rollback(name),
        wait=wait,
        timeout=timeout,
        output=output,
    )


@deployments_app.command("delete")
def delete(
    ctx: typer.Context,
    name: DeploymentArgument,
    missing_ok: Annotated[
        bool,
        typer.Option("--missing-ok", help="Succeed when the deployment is gone."),
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Delete a deployment with its revisions and pods."""

    async def body(client: AsyncMaestroClient) -> dict[str, str]:
        await client.deployment.delete(name, missing_ok=missing_ok)
        return {"name": name, "result": "deleted"}

    result = run_command(ctx, body)
    if output is OutputFormat.json:
        print_json(result)
    else:
        console.print(f"deleted deployment {name}")


def _watch_table(name: str, rows: list[list[str]]) -> Table:
    table = Table(title=f"deployment {name} (Ctrl-C to stop)")
    for column in ("time", "event", "version", "ready", "rollout", "traffic"):
        table.add_column(column)
    for row in rows[-20:]:
        table.add_row(*row)
    return table


@deployments_app.command("watch")
def watch(
    ctx: typer.Context,
    name: DeploymentArgument,
    until_ready: Annotated[
        bool,
        typer.Option("--until-ready", help="Stop once the deployment is ready."),
    ] = False,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Show each change of a deployment live; Ctrl-C stops (exit code 130).

    The deployment must exist when the watch starts. With --output json, each
    change is one JSON line. When stdout is not a terminal, each change is one
    plain line with the table's columns.
    """

    async def body(client: AsyncMaestroClient) -> None:
        # The watch itself waits for a missing name to appear and retries a
        # cluster it cannot reach, so a typo or a down cluster would hang here.
        await client.deployment.get_deployment(name)
        rows: list[list[str]] = []
        live = (
            Live(console=console, refresh_per_second=8, transient=False)
            if output is OutputFormat.table and console.is_terminal
            else None
        )
        with live if live is not None else contextlib.nullcontext():
            async for event in client.deployment.watch(name):
                deployment = event.deployment
                if output is OutputFormat.json:
                    write_line(dumps_json(event))
                else:
                    row = _watch_row(event)
                    if live is None:
                        write_line("  ".join(row))
                    else:
                        rows.append(row)
                        live.update(_watch_table(name, rows))
                if until_ready and deployment.ready and deployment.up_to_date:
                    return

    run_command(ctx, body)


def _watch_row(event: Any) -> list[str]:
    deployment = event.deployment
    return [
        clock_time(),
        cell(event.type),
        cell(f"v{deployment.model_version}"),
        "ready" if deployment.ready else "not ready",
        cell(deployment.rollout_state),
        cell(_traffic(deployment)),
    ]
