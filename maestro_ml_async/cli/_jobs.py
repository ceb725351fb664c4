"""``maestro-ml jobs``: training jobs on the cluster."""

from __future__ import annotations

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
    fail,
    parse_pairs,
    print_json,
    run_command,
    write_line,
)
from ._text import printable

jobs_app = typer.Typer(
    help="Training jobs: Kubeflow Training Operator jobs, TrainJobs and batch Jobs.",
    no_args_is_help=True,
)

JobArgument = Annotated[str, typer.Argument(help="Training job name.")]


def _job_fields(job: Any) -> list[tuple[str, Any]]:
    failure = job.failure
    return [
        ("name", job.name),
        ("namespace", job.namespace),
        ("kind", job.kind),
        ("status", job.status),
        ("failure", f"{failure.reason}: {failure.message}" if failure else None),
        ("created", job.created_at),
        ("started", job.start_time),
        ("completed", job.completion_time),
        ("pods", {kind: " ".join(names) for kind, names in job.pods.items()}),
    ]


@jobs_app.command("submit")
def submit(
    ctx: typer.Context,
    name: JobArgument,
    framework: Annotated[
        str,
        typer.Option(
            "--framework",
            "-f",
            help="pytorch, tensorflow, xgboost, mpi, jax, paddle, sklearn, custom, "
            "or trainjob[:<runtime>].",
        ),
    ],
    image: Annotated[str, typer.Option("--image", help="Container image.")],
    code_path: Annotated[
        str | None,
        typer.Option(
            "--code-path",
            help="Local script or folder shipped with the job (at most 1 MiB), "
            "or a path inside the image.",
        ),
    ] = None,
    command: Annotated[
        list[str] | None,
        typer.Option("--command", help="Container command word; repeatable."),
    ] = None,
    args: Annotated[
        list[str] | None,
        typer.Option("--arg", help="Container argument; repeatable."),
    ] = None,
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs per replica.", min=0)] = 0,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker replicas.", min=0)
    ] = 1,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="Training parameter KEY=VALUE, passed as --KEY VALUE and as an "
            "environment variable; repeatable.",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Environment variable KEY=VALUE; repeatable."),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="Label KEY=VALUE; repeatable."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until the job succeeds.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Time limit of --wait in seconds, a usage error without "
            "--wait. Default: the configuration's training_job_timeout (3600).",
            min=0.001,
        ),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Submit a training job; with --wait, exit 1 when it fails."""
    check_timeout_needs_wait(ctx, wait=wait)
    param_map = parse_pairs(params, "--param")
    env_map = parse_pairs(env, "--env")
    label_map = parse_pairs(labels, "--label")

    async def body(client: AsyncMaestroClient) -> Any:
        job = await client.training.submit_job(
            name,
            framework,
            image,
            code_path=code_path,
            command=command or None,
            args=args or None,
            gpus=gpus,
            workers=workers,
            params=param_map or None,
            env=env_map or None,
            labels=label_map or None,
        )
        if wait:
            job = await job.wait(timeout)
        return job

    job = run_command(ctx, body)
    emit_fields(output, job, _job_fields(job))


@jobs_app.command("get")
def get_job(
    ctx: typer.Context, name: JobArgument, output: OutputOption = OutputFormat.table
) -> None:
    """Show a training job with its status and pods."""
    job = run_command(ctx, lambda client: client.training.get_job(name))
    emit_fields(output, job, _job_fields(job))


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    selector: Annotated[
        str | None,
        typer.Option("--selector", "-l", help="Label selector, e.g. team=risk."),
    ] = None,
    output: OutputOption = OutputFormat.table,
) -> None:
    """List training jobs of every kind in the namespace."""

    async def body(client: AsyncMaestroClient) -> list[Any]:
        return [job async for job in client.training.list_jobs(selector)]

    jobs = run_command(ctx, body)
    emit(
        output,
        jobs,
        columns=("name", "kind", "status", "created", "completed"),
        rows=[
            [job.name, job.kind, job.status, job.created_at, job.completion_time]
            for job in jobs
        ],
        title=f"{len(jobs)} training jobs",
    )


def _status_table(job: Any, history: list[tuple[str, str]]) -> Table:
    table = Table(title=f"{job.kind} {job.namespace}/{job.name}")
    table.add_column("time")
    table.add_column("status")
    for when, status in history:
        table.add_row(when, status)
    return table


@jobs_app.command("watch")
def watch(
    ctx: typer.Context, name: JobArgument, output: OutputOption = OutputFormat.table
) -> None:
    """Follow a job's status live until it finishes; exit 1 if it fails.

    With --output json, each status change is one JSON line. When stdout is
    not a terminal, each change is one plain ``TIME NAME STATUS`` line.
    """

    async def body(client: AsyncMaestroClient) -> Any:
        last: Any = None
        if output is OutputFormat.json:
            async for job in client.training.watch(name):
                write_line(dumps_json(job))
                last = job
            return last
        if not console.is_terminal:
            async for job in client.training.watch(name):
                write_line(f"{clock_time()}  {cell(job.name)}  {cell(job.status)}")
                last = job
            return last
        history: list[tuple[str, str]] = []
        with Live(console=console, refresh_per_second=8) as live:
            async for job in client.training.watch(name):
                history.append((clock_time(), cell(job.status)))
                live.update(_status_table(job, history))
                last = job
        return last

    job = run_command(ctx, body)
    if job is not None and job.failure is not None:
        fail(
            f"job {name} failed: {job.failure.reason}: {job.failure.message}",
            output=output,
        )


@jobs_app.command("logs")
def logs(
    ctx: typer.Context,
    name: JobArgument,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow/--no-follow",
            "-f",
            help="Keep streaming until the job ends (default), or print what "
            "is there now.",
        ),
    ] = True,
    pod_timeout: Annotated[
        float,
        typer.Option(
            "--pod-timeout",
            help="Seconds to wait for a first container to start.",
            min=0.001,
        ),
    ] = 300.0,
    output: OutputOption = OutputFormat.table,
) -> None:
    """Print the logs of every replica, each line prefixed with its pod.

    Control characters in the lines, ANSI colour codes included, are printed
    as \\xNN escapes, so a job cannot move the cursor or retitle the
    terminal. With --output json, each line is a JSON object with the raw text.
    """

    async def body(client: AsyncMaestroClient) -> None:
        stream = client.training.logs(name, follow=follow, pod_timeout=pod_timeout)
        async for line in stream:
            if output is OutputFormat.json:
                text = dumps_json(line)
            else:
                text = printable(str(line))
            write_line(text)

    run_command(ctx, body)


@jobs_app.command("cancel")
def cancel(
    ctx: typer.Context, name: JobArgument, output: OutputOption = OutputFormat.table
) -> None:
    """Stop a running job (its record stays; use the cluster to delete it)."""

    async def body(client: AsyncMaestroClient) -> dict[str, str]:
        await client.training.cancel_job(name)
        return {"name": name, "result": "cancelled"}

    result = run_command(ctx, body)
    if output is OutputFormat.json:
        print_json(result)
    else:
        console.print(f"cancelled training job {name}")
