"""The ``pods/<name>/log`` endpoint: plain text, chunked, optionally followed."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from .._timestamps import parse_rfc3339
from . import _faults, _status
from ._context import ServerContext
from ._http import Target, flag, int_param
from ._podlogs import LogLine
from ._resources import ResourceType
from ._status import StoreError

_log = logging.getLogger(__name__)

Obj = dict[str, Any]


# The kind that log option errors name, as in 'PodLogOptions "p" is invalid'.
_LOG_OPTIONS = ResourceType("", "v1", "pods", "PodLogOptions", custom=False)


def format_log_timestamp(moment: datetime) -> str:
    """Format a log time as the kubelet does: RFC 3339 with 9 fraction digits."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}000Z"


def _parse_since_time(text: str) -> datetime:
    """Parse ``sinceTime`` and drop its fraction of a second.

    The API server forwards sinceTime to the kubelet formatted as RFC 3339
    without fractional seconds, so a real cluster also returns every line of
    the second that sinceTime falls in.
    """
    try:
        moment = parse_rfc3339(text)
    except ValueError:
        message = f"sinceTime: invalid value {text!r}, expected RFC 3339"
        raise StoreError(_status.bad_request(message)) from None
    if moment.tzinfo is None:
        message = f"sinceTime: invalid value {text!r}, expected a time zone offset"
        raise StoreError(_status.bad_request(message))
    return moment.replace(microsecond=0)


def _choose_container(pod: Obj, name: str, requested: str | None) -> str:
    spec = pod.get("spec") or {}
    containers = [c["name"] for c in spec.get("containers") or []]
    init_containers = [c["name"] for c in spec.get("initContainers") or []]
    if requested:
        if requested not in containers and requested not in init_containers:
            message = f"container {requested} is not valid for pod {name}"
            raise StoreError(_status.bad_request(message))
        return requested
    if len(containers) == 1:
        return str(containers[0])
    message = (
        f"a container name must be specified for pod {name}, "
        f"choose one of: [{' '.join(containers)}]"
    )
    if init_containers:
        message += f" or one of the init containers: [{' '.join(init_containers)}]"
    raise StoreError(_status.bad_request(message))


def _container_state(pod: Obj, container: str) -> Obj:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == container:
                return dict(entry)
    return {}


def _check_readable(pod: Obj, pod_name: str, container: str, previous: bool) -> bool:
    """Return whether the container still runs; raise 400 when it has no log yet."""
    entry = _container_state(pod, container)
    state = entry.get("state") or {}
    if previous:
        return False
    if "running" in state:
        return True
    if "terminated" in state:
        return False
    reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
    # A container waiting to restart still serves the log of its last run.
    if entry.get("lastState", {}).get("terminated"):
        return False
    message = (
        f'container "{container}" in pod "{pod_name}" is waiting to start: {reason}'
    )
    raise StoreError(_status.bad_request(message))


def _check_log_options(request: web.Request, pod_name: str) -> None:
    """Reject log options as the API server's ValidatePodLogOptions does (422)."""
    causes: list[tuple[str, str, str]] = []
    tail = int_param(request, "tailLines")
    if tail is not None and tail < 0:
        message = f"Invalid value: {tail}: must be greater than or equal to 0"
        causes.append(("FieldValueInvalid", "tailLines", message))
    limit = int_param(request, "limitBytes")
    if limit is not None and limit < 1:
        message = f"Invalid value: {limit}: must be greater than 0"
        causes.append(("FieldValueInvalid", "limitBytes", message))
    since_seconds = int_param(request, "sinceSeconds")
    if since_seconds is not None and request.query.get("sinceTime"):
        message = (
            "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        )
        causes.append(("FieldValueForbidden", "", message))
    elif since_seconds is not None and since_seconds < 1:
        message = f"Invalid value: {since_seconds}: must be greater than 0"
        causes.append(("FieldValueInvalid", "sinceSeconds", message))
    if causes:
        raise StoreError(_status.invalid(_LOG_OPTIONS, pod_name, causes))


def _select_lines(request: web.Request, lines: list[LogLine]) -> list[LogLine]:
    since_time = request.query.get("sinceTime")
    since_seconds = int_param(request, "sinceSeconds")
    if since_time:
        cutoff = _parse_since_time(since_time)
        lines = [line for line in lines if line[0] >= cutoff]
    if since_seconds is not None:
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=since_seconds)
        lines = [line for line in lines if line[0] >= cutoff]
    tail = int_param(request, "tailLines")
    if tail is not None and tail >= 0:
        lines = lines[len(lines) - tail :] if tail else []
    return lines


class _Writer:
    """Formats log lines, enforces ``limitBytes`` and applies a ``drop_log`` fault.

    Attributes:
        dropped: Whether a ``drop_log`` fault has aborted the connection.
    """

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        timestamps: bool,
        limit: int | None,
        drop_after: int | None = None,
    ):
        self.request = request
        self.response = response
        self.timestamps = timestamps
        self.remaining = limit
        self.drop_after = drop_after
        self.sent = 0
        self.dropped = False

    async def write(self, line: LogLine) -> bool:
        """Write one line; return ``False`` once ``limitBytes`` or a fault ends it."""
        moment, text = line
        data = (text + "\n").encode()
        if self.timestamps:
            data = format_log_timestamp(moment).encode() + b" " + data
        if self.drop_after is not None and self.sent >= self.drop_after:
            await self._drop(data)
            return False
        self.sent += 1
        if self.remaining is not None:
            data = data[: self.remaining]
            self.remaining -= len(data)
        if data:
            await self.response.write(data)
        return self.remaining is None or self.remaining > 0

    async def _drop(self, data: bytes) -> None:
        await self.response.write(data[: max(1, len(data) // 2)])
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.dropped = True
        _log.info(
            "fault: dropped log of %s after %d lines mid-line",
            self.request.path,
            self.sent,
        )


async def handle_log(
    ctx: ServerContext,
    request: web.Request,
    target: Target,
    fault: _faults.Fault | None = None,
) -> web.StreamResponse:
    """Serve a container's log as ``text/plain``, following it if asked.

    A ``drop_log`` fault cuts the response after its ``after_lines`` lines.
    """
    assert target.name is not None and target.namespace is not None
    pod = ctx.store.get(target.rtype, target.namespace, target.name)
    if pod is None:
        raise StoreError(_status.not_found(target.rtype, target.name))
    container = _choose_container(pod, target.name, request.query.get("container"))
    previous = flag(request, "previous")
    logs = ctx.pod_logs
    key = (target.namespace, target.name, container)
    if previous and not logs.has_previous(*key):
        message = (
            f'previous terminated container "{container}" in pod '
            f'"{target.name}" not found'
        )
        raise StoreError(_status.bad_request(message))
    _check_log_options(request, target.name)
    running = _check_readable(pod, target.name, container, previous)
    limit = int_param(request, "limitBytes")

    all_lines = logs.lines(*key, previous=previous)
    selected = _select_lines(request, all_lines)
    response = web.StreamResponse(status=200)
    response.content_type = "text/plain"
    response.enable_chunked_encoding()
    drop_after = None
    if fault is not None and fault.kind == _faults.DROP_LOG:
        drop_after = fault.after_lines
    timestamps = flag(request, "timestamps")
    writer = _Writer(request, response, timestamps, limit, drop_after)
    follow = flag(request, "follow") and running and not previous
    if follow:
        ctx.stats.log_streams_open += 1
    try:
        await response.prepare(request)
        await _write_log(ctx, writer, key, selected, len(all_lines), follow)
    except ConnectionResetError as exc:
        # A client that stops reading a log is normal. The transport closes
        # before aiohttp cancels this handler, so a write in between fails.
        _log.debug("log of %s/%s/%s ended: client disconnected (%s)", *key, exc)
    finally:
        if follow:
            ctx.stats.log_streams_open -= 1
    return response


async def _write_log(
    ctx: ServerContext,
    writer: _Writer,
    key: tuple[str, str, str],
    selected: list[LogLine],
    start_index: int,
    follow: bool,
) -> None:
    """Write the selected lines, then the new ones while following."""
    for line in selected:
        if not await writer.write(line):
            break
    else:
        if follow:
            async for line in ctx.pod_logs.follow(*key, start_index=start_index):
                if not await writer.write(line):
                    break
    if not writer.dropped:
        await writer.response.write_eof()
