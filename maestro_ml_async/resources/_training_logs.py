"""Log streaming for training jobs: every container of every replica, in one stream.

Each container is followed with ``timestamps=true``. The timestamp of the last
line delivered, and how many lines carried exactly that timestamp, are kept per
container; a reconnect asks for ``sinceTime`` (which the API server reads with
one-second precision) and drops every line up to that point. So a dropped
connection or a restarted container neither repeats nor loses lines.
kubernetes-asyncio's ``read_namespaced_pod_log`` has no ``sinceTime``, so the
requests are built here on the transport's authenticated session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import aiohttp

from .._transport._aio import wait_with_timeout
from ..types.training import LogLine
from ._training_kinds import JobKind, derive_status, replica_of_pod

if TYPE_CHECKING:
    from .._transport._kube import ClusterTransport

__all__ = ["JobLogStreamer", "parse_log_timestamp", "read_current_logs"]

logger = logging.getLogger(__name__)

_FOLLOW_RETRIES = 8
_DONE_GRACE = 5.0
_SENTINEL: Any = object()
MAX_LINE_BYTES = 8 * 1024 * 1024
"""Maximum bytes of a log line delivered as one `LogLine`; longer lines come in pieces.

aiohttp's ``readline`` raises ``LineTooLong`` above its read buffer (4 MiB with
the buffer that kubernetes-asyncio sets). A container can write far more
without a newline, for example a progress bar that redraws with carriage
returns, so the stream splits lines itself.
"""


_LOG_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?"
    r"(?:Z|([+-])(\d{2}):(\d{2}))"
)


def parse_log_timestamp(text: str) -> int | None:
    """Return an RFC 3339 timestamp (nanosecond precision) as epoch nanoseconds.

    The API documents RFC 3339 timestamps, which may carry an offset
    (``+01:00``) instead of ``Z``, as Docker's ``local`` log driver wrote them
    until late 2023, so both forms are read.
    """
    match = _LOG_TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    seconds_part, fraction, sign, hours, minutes = match.groups()
    try:
        moment = datetime.strptime(seconds_part, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    whole = int(moment.replace(tzinfo=timezone.utc).timestamp())
    if sign is not None:
        offset = int(hours) * 3600 + int(minutes) * 60
        whole -= offset if sign == "+" else -offset
    digits = (fraction or "").ljust(9, "0")
    return whole * 1_000_000_000 + int(digits)


def _since_time(nanos: int) -> str:
    moment = datetime.fromtimestamp(nanos // 1_000_000_000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Cursor:
    """How far one container's log has been delivered."""

    last_ns: int = -1
    at_last: int = 0

    def accept(self, nanos: int) -> bool:
        if nanos < self.last_ns:
            return False
        if nanos == self.last_ns:
            self.at_last += 1
            return self.at_last > self._seen_at_last
        self.last_ns = nanos
        self.at_last = 1
        self._seen_at_last = 0
        return True

    def rewind(self) -> None:
        """Start counting lines at `last_ns` again, for a new request."""
        self._seen_at_last = self.at_last
        self.at_last = 0

    _seen_at_last: int = 0


async def iter_log_pieces(
    content: aiohttp.StreamReader, max_bytes: int | None = None
) -> AsyncIterator[tuple[bytes, bool]]:
    """Yield ``(piece, starts_line)`` for each line of a log response body.

    A piece is a whole line with its newline, or the last line without one. A
    line longer than `max_bytes` comes in parts of at most `max_bytes`, and
    `starts_line` is False for every part after the first.
    """
    limit = MAX_LINE_BYTES if max_bytes is None else max_bytes
    buffer = bytearray()
    starts_line = True
    async for chunk in content.iter_any():
        buffer += chunk
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            stop = len(buffer) if end < 0 else end + 1
            if stop - start > limit:
                yield bytes(buffer[start : start + limit]), starts_line
                starts_line = False
                start += limit
                continue
            if end < 0:
                break
            yield bytes(buffer[start:stop]), starts_line
            starts_line = True
            start = stop
        del buffer[:start]
    if buffer:
        yield bytes(buffer), starts_line


def _split_line(raw: bytes) -> tuple[int | None, str]:
    # NOTE: a piece of an overlong line that ends inside a multi-byte UTF-8
    # character shows U+FFFD for it and for the start of the next piece.
    text = raw.decode("utf-8", errors="replace").rstrip("\n")
    stamp, _, rest = text.partition(" ")
    nanos = parse_log_timestamp(stamp)
    if nanos is None:
        return None, text
    return nanos, rest


def _container_states(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return {str(s.get("name")): s for s in statuses if isinstance(s, dict)}


def _started(status: dict[str, Any] | None) -> bool:
    state = (status or {}).get("state") or {}
    return "running" in state or "terminated" in state


def pod_wait_reason(pod: dict[str, Any]) -> str | None:
    """Return why a pod is not running yet (ImagePullBackOff, Unschedulable, ...).

    An init container that cannot start or has failed is named first, with the
    ``Init:`` prefix that kubectl shows, because the main containers then only
    report PodInitializing. The Training Operator adds such an init container
    to the workers of some kinds, for example to wait for the master's address.
    """
    status = pod.get("status") or {}
    for container in status.get("initContainerStatuses") or []:
        reason = _init_container_problem(container or {})
        if reason is not None:
            return reason
    for container in status.get("containerStatuses") or []:
        waiting = ((container or {}).get("state") or {}).get("waiting")
        if waiting:
            return _waiting_text(waiting) + _last_failure(container)
    if status.get("phase") == "Pending":
        for condition in status.get("conditions") or []:
            if condition.get("status") == "False" and condition.get("reason"):
                text = f"Pending: {condition['reason']}"
                message = condition.get("message")
                return f"{text}: {message}" if message else text
        return "Pending"
    return None


def _waiting_text(waiting: dict[str, Any], prefix: str = "") -> str:
    reason = waiting.get("reason") or "Waiting"
    message = waiting.get("message")
    return f"{prefix}{reason}: {message}" if message else f"{prefix}{reason}"


def _init_container_problem(container: dict[str, Any]) -> str | None:
    state = container.get("state") or {}
    waiting = state.get("waiting")
    # An init container waits with PodInitializing while earlier ones still run.
    if waiting and waiting.get("reason") != "PodInitializing":
        return _waiting_text(waiting, "Init:") + _last_failure(container)
    terminated = state.get("terminated")
    if terminated and terminated.get("exitCode") not in (0, None):
        return "Init:" + _exit_text(terminated)
    return None


def _exit_text(terminated: dict[str, Any]) -> str:
    text = f"{terminated.get('reason') or 'Error'} (exit code {terminated['exitCode']})"
    message = terminated.get("message")
    return f"{text}: {message}" if message else text


def _last_failure(container: dict[str, Any]) -> str:
    """Describe the failed previous run of a container that waits to restart.

    A container in CrashLoopBackOff shows only the back-off in its state; the
    exit code and message that explain it are in ``lastState``.
    """
    terminated = (container.get("lastState") or {}).get("terminated") or {}
    if terminated.get("exitCode") in (0, None):
        return ""
    return "; last run: " + _exit_text(terminated)


class JobLogStreamer:
    """Follows the logs of one job's pods until the job ends.

    Args:
        transport: The cluster transport.
        kind: The job's kind.
        name: The job's name.
        namespace: The job's namespace.
        pod_timeout: Seconds to wait for a first container to start before
            raising `TrainingTimeoutException`.
        uid: The uid of the job instance whose pods are followed. Pods that
            other instances of the same name left behind are ignored, and None
            follows every pod that the name selects.
    """

    def __init__(
        self,
        transport: ClusterTransport,
        kind: JobKind,
        name: str,
        namespace: str,
        pod_timeout: float,
        uid: str | None = None,
    ) -> None:
        self._transport = transport
        self._kind = kind
        self._name = name
        self._uid = uid
        self._namespace = namespace
        self._pod_timeout = pod_timeout
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pods: dict[str, dict[str, Any]] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._followers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._cursors: dict[tuple[str, str], _Cursor] = {}
        self._job_done = asyncio.Event()
        self._any_started = False

    async def stream(self) -> AsyncIterator[LogLine]:
        """Yield log lines until the job has ended and every container is read."""
        tasks = [
            asyncio.ensure_future(self._watch_pods()),
            asyncio.ensure_future(self._watch_job()),
            asyncio.ensure_future(self._supervise()),
        ]
        try:
            while True:
                item = await self._queue.get()
                if item is _SENTINEL:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            followers = list(self._followers.values())
            for task in tasks + followers:
                task.cancel()
            await asyncio.gather(*tasks, *followers, return_exceptions=True)

    async def _watch_pods(self) -> None:
        watch = self._transport.watch(
            "",
            "v1",
            "pods",
            namespace=self._namespace,
            label_selector=self._kind.pod_selector(self._name),
        )
        try:
            async with watch:
                async for event in watch:
                    self._on_pod(event.type, event.object)
        except Exception as exc:
            self._queue.put_nowait(exc)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        if not self._kind.owns_pod(pod, self._uid):
            return
        name = str(pod["metadata"]["name"])
        if kind == "DELETED":
            self._pods.pop(name, None)
        else:
            self._pods[name] = pod
            states = _container_states(pod)
            self._any_started = self._any_started or any(
                _started(s) for s in states.values()
            )
            for container in (pod.get("spec") or {}).get("containers") or []:
                key = (name, str(container["name"]))
                if key not in self._followers:
                    self._followers[key] = asyncio.ensure_future(self._guard(*key))
        event = self._changed.pop(name, None)
        if event is not None:
            event.set()

    async def _pod_changed(self, pod: str, timeout: float) -> None:
        event = self._changed.setdefault(pod, asyncio.Event())
        with contextlib.suppress(asyncio.TimeoutError):
            await wait_with_timeout(event.wait(), timeout)

    async def _watch_job(self) -> None:
        hub = self._transport.hub(
            self._kind.group, self._kind.version, self._kind.plural, self._namespace
        )
        try:
            async with hub.subscribe(self._name) as events:
                obj = await self._transport.get_object(
                    self._kind.group,
                    self._kind.version,
                    self._kind.plural,
                    self._namespace,
                    self._name,
                )
                while not derive_status(self._kind, obj).finished:
                    event = await events.get()
                    if event.type == "DELETED":
                        break
                    obj = event.object
        except Exception as exc:
            self._queue.put_nowait(exc)
            return
        self._job_done.set()

    async def _supervise(self) -> None:
        from ..types.training import TrainingTimeoutException

        started = time.monotonic()
        while not self._any_started and not self._job_done.is_set():
            if time.monotonic() - started > self._pod_timeout:
                reasons = {
                    name: pod_wait_reason(pod) or "Pending"
                    for name, pod in self._pods.items()
                }
                self._queue.put_nowait(
                    TrainingTimeoutException(
                        f"no container of job {self._name} started within "
                        f"{self._pod_timeout:g} s: "
                        + (
                            ", ".join(f"{p}: {r}" for p, r in reasons.items())
                            or "no pods"
                        ),
                        job_name=self._name,
                        last_status=None,
                        pod_reasons=reasons,
                    )
                )
                return
            await asyncio.sleep(min(0.05, self._pod_timeout / 10))
        await self._job_done.wait()
        # The pod watch may lag behind the job: list the pods once more so that
        # every pod of a job that finished quickly gets its log read.
        items, _ = await self._transport.list_all(
            "",
            "v1",
            "pods",
            self._namespace,
            label_selector=self._kind.pod_selector(self._name),
        )
        for pod in items:
            self._on_pod("MODIFIED", pod)
        deadline = time.monotonic() + _DONE_GRACE
        while time.monotonic() < deadline:
            running = [t for t in self._followers.values() if not t.done()]
            if not running:
                break
            await asyncio.wait(running, timeout=deadline - time.monotonic())
        self._queue.put_nowait(_SENTINEL)

    async def _guard(self, pod_name: str, container: str) -> None:
        # An unexpected error ends the whole stream instead of silently ending
        # one container's log.
        try:
            await self._follow(pod_name, container)
        except Exception as exc:
            self._queue.put_nowait(exc)

    async def _follow(self, pod_name: str, container: str) -> None:
        cursor = self._cursors.setdefault((pod_name, container), _Cursor())
        followed: int | None = None
        failures = 0
        while True:
            pod = self._pods.get(pod_name)
            if pod is None:
                return
            status = _container_states(pod).get(container)
            if not _started(status):
                if self._job_done.is_set():
                    return
                await self._pod_changed(pod_name, 1.0)
                continue
            assert status is not None
            restarts = int(status.get("restartCount") or 0)
            # A container first seen after a restart still has the log of its
            # previous run, as a read without follow returns it.
            if restarts > (followed or 0):
                await self._read(pod, container, cursor, previous=True, follow=False)
            followed = restarts
            terminated = "terminated" in (status.get("state") or {})
            ok = await self._read(
                pod, container, cursor, previous=False, follow=not terminated
            )
            failures = 0 if ok else failures + 1
            if failures > _FOLLOW_RETRIES:
                logger.warning("giving up on the log of %s/%s", pod_name, container)
                return
            phase = ((self._pods.get(pod_name) or {}).get("status") or {}).get("phase")
            if ok and terminated and phase in ("Succeeded", "Failed"):
                return
            if self._job_done.is_set() and ok:
                return
            await self._pod_changed(
                pod_name, 0.5 if ok else min(2.0, 0.1 * 2**failures)
            )

    async def _read(
        self,
        pod: dict[str, Any],
        container: str,
        cursor: _Cursor,
        *,
        previous: bool,
        follow: bool,
    ) -> bool:
        """Read one log request into the queue; return False when it failed."""
        from .._transport._kube import resource_path

        pod_name = str(pod["metadata"]["name"])
        query: list[tuple[str, Any]] = [
            ("container", container),
            ("timestamps", "true"),
        ]
        if follow:
            query.append(("follow", "true"))
        if previous:
            query.append(("previous", "true"))
        if cursor.last_ns >= 0:
            query.append(("sinceTime", _since_time(cursor.last_ns)))
        path = resource_path("", "v1", "pods", self._namespace, pod_name, "log")
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, connect=30)
        try:
            response = await self._transport.open(
                "GET", path, query=query, accept="*/*", timeout=timeout
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.info("log request for %s/%s failed: %s", pod_name, container, exc)
            return False
        try:
            if response.status != 200:
                body = await response.read()
                if response.status == 401:
                    await self._transport.refresh_credentials()
                # 400: the container is waiting, or there is no previous instance.
                logger.debug(
                    "log of %s/%s: HTTP %d %s",
                    pod_name,
                    container,
                    response.status,
                    body[:200],
                )
                return response.status in (400, 404)
            cursor.rewind()
            replica_type, index = replica_of_pod(self._kind, pod)
            skipping = False
            async for raw, starts_line in iter_log_pieces(response.content):
                if starts_line:
                    nanos, text = _split_line(raw)
                    # A line delivered before a reconnect is dropped with
                    # all of its pieces.
                    skipping = nanos is not None and not cursor.accept(nanos)
                else:
                    nanos, text = None, raw.decode("utf-8", "replace").rstrip("\n")
                if skipping:
                    continue
                self._queue.put_nowait(
                    LogLine(
                        pod=pod_name,
                        container=container,
                        replica_type=replica_type,
                        replica_index=index,
                        line=text,
                        timestamp=_to_datetime(nanos),
                        previous=previous,
                    )
                )
            return True
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.info(
                "log stream of %s/%s dropped: %s",
                pod_name,
                container,
                type(exc).__name__,
            )
            return False
        finally:
            response.close()


def _pod_order(kind: JobKind, pod: dict[str, Any]) -> tuple[str, int, str]:
    replica_type, index = replica_of_pod(kind, pod)
    return replica_type or "", -1 if index is None else index, pod["metadata"]["name"]


def _to_datetime(nanos: int | None) -> datetime | None:
    if nanos is None:
        return None
    return datetime.fromtimestamp(nanos / 1e9, tz=timezone.utc)


async def read_current_logs(
    transport: ClusterTransport,
    kind: JobKind,
    name: str,
    namespace: str,
    uid: str | None = None,
) -> list[LogLine]:
    """Return the current logs of the pods of job instance `uid` (any, if None).

    The previous run of a restarted container comes before its current run.
    """
    items = []
    async for pod in transport.iter_list(
        "", "v1", "pods", namespace, label_selector=kind.pod_selector(name)
    ):
        if kind.owns_pod(pod, uid):
            items.append(pod)
    items.sort(key=lambda pod: _pod_order(kind, pod))
    streamer = JobLogStreamer(transport, kind, name, namespace, pod_timeout=0, uid=uid)
    for pod in items:
        states = _container_states(pod)
        for container in (pod.get("spec") or {}).get("containers") or []:
            cname = str(container["name"])
            status = states.get(cname) or {}
            cursor = _Cursor()
            if int(status.get("restartCount") or 0) > 0 or status.get("lastState"):
                await streamer._read(pod, cname, cursor, previous=True, follow=False)
            if _started(status):
                await streamer._read(pod, cname, cursor, previous=False, follow=False)
    lines = []
    while not streamer._queue.empty():
        item = streamer._queue.get_nowait()
        if isinstance(item, LogLine):
            lines.append(item)
    return lines
