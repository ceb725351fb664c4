"""The artifacts sub-client: list, upload and download run artifacts.

Files travel through the tracking server's artifact proxy
(``/api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/artifacts/<path>``), which
the server offers when started with ``--serve-artifacts``. Uploads and
downloads stream in chunks and never hold a whole file in memory.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx

from .._exceptions import (
    MLflowException,
    NotSupportedByServerException,
    RunNotFoundException,
    TransportException,
    ValidationException,
)
from .._pagination import next_page_token
from .._transport._errors import error_from_response, parse_json_body
from .._transport._retry import RETRY_STATUSES, parse_retry_after
from .._validation import check_positive_int
from ..types.tracking import ArtifactInfo
from ._artifact_paths import (
    PROXY_PREFIX,
    check_download_targets,
    check_local_path,
    check_run_id,
    check_upload_path,
    collect_upload_files,
    join_artifact_path,
    listing_drops_start,
    proxy_path,
    proxy_root,
    safe_artifact_path,
    safe_local_target,
)
from ._base import AsyncMlflowResource
from ._responses import parse_items

__all__ = ["AsyncArtifactsResource"]

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024


def _serving_off_error(response: httpx.Response) -> NotSupportedByServerException:
    return NotSupportedByServerException(
        "artifact serving is off on this server: the artifact proxy returned HTTP "
        "503 with a plain-text body; start the server with --serve-artifacts",
        status_code=response.status_code,
        error_code="ARTIFACT_SERVING_DISABLED",
        method=response.request.method,
        path=response.request.url.path,
    )


def _is_serving_off(response: httpx.Response) -> bool:
    # MLflow returns 503 with a plain-text body that names --no-serve-artifacts.
    return response.status_code == 503 and parse_json_body(response) is None


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(CHUNK_SIZE):
            yield chunk


async def _run_bounded(
    jobs: builtins.list[Callable[[], Awaitable[None]]], max_concurrency: int
) -> None:
    """Run jobs with at most `max_concurrency` at once; the first failure
    cancels the rest and is raised."""
    limiter = asyncio.Semaphore(max_concurrency)

    async def run(job: Callable[[], Awaitable[None]]) -> None:
        async with limiter:
            await job()

    tasks = [asyncio.ensure_future(run(job)) for job in jobs]
    if not tasks:
        return
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        # Wait for every job to end, also when this call is cancelled, so that
        # none outlives it. A cancelled download removes its partial file then.
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class AsyncArtifactsResource(AsyncMlflowResource):
    """Run artifacts through the server's artifact proxy.

    Paths are relative to the run's artifact root and use ``/``. A path that is
    absolute or contains ``..`` is rejected before any request, and so is a
    listing from the server that would write outside the target folder.
    """

    def __init__(self, transport: Any) -> None:
        super().__init__(transport)
        self._roots: dict[str, str] = {}

    async def _root(self, run_id: str) -> str:
        if run_id not in self._roots:
            response = await self._transport.call(
                "GET",
                "runs/get",
                params={"run_id": run_id},
                not_found=RunNotFoundException,
            )
            uri = str(response["run"]["info"].get("artifact_uri", ""))
            self._roots[run_id] = proxy_root(uri)
        return self._roots[run_id]

    @contextlib.asynccontextmanager
    async def _open(
        self,
        method: str,
        path: str,
        *,
        body: Callable[[], AsyncIterator[bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send a request to the proxy with retries and yield the open response.

        `body` is called again for each attempt, so a retried upload starts
        from the first byte. A whole-file PUT replaces the file, so repeating
        it has no extra effect.
        """
        transport = self._transport
        config = transport.config
        attempt = 0
        while True:
            transport.check_open()
            request = transport.http.build_request(
                method,
                transport.url(path),
                content=body() if body is not None else None,
                headers=headers,
                params=params,
            )
            # The semaphore is held while the body streams, because the
            # response keeps its pooled connection until it is closed.
            async with transport.limiter:
                started = time.perf_counter()
                try:
                    response = await transport.http.send(request, stream=True)
                except httpx.TransportError as exc:
                    if attempt >= config.max_retries:
                        raise TransportException(
                            f"artifact request failed: {type(exc).__name__}: {exc}",
                            method=method,
                            path=path,
                        ) from None
                    failure, retry_after = type(exc).__name__, None
                else:
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    transport.log_response(
                        method, path, response.status_code, elapsed_ms
                    )
                    try:
                        if response.is_success:
                            yield response
                            return
                        await response.aread()
                        if _is_serving_off(response):
                            raise _serving_off_error(response)
                        retryable = response.status_code in RETRY_STATUSES
                        if not retryable or attempt >= config.max_retries:
                            raise error_from_response(response)
                    finally:
                        await response.aclose()
                    failure = f"HTTP {response.status_code}"
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
            attempt += 1
            await self._backoff(attempt, method, path, failure, retry_after)

    async def _backoff(
        self,
        attempt: int,
        method: str,
        path: str,
        why: str,
        retry_after: float | None = None,
    ) -> None:
        config = self._transport.config
        delay = random.uniform(
            0, min(config.retry_backoff_max, config.retry_backoff_base * 2**attempt)
        )
        if retry_after is not None:
            # The server's Retry-After wins, up to the bound on all retries.
            delay = max(delay, min(retry_after, config.retry_max_elapsed))
        logger.info(
            "retrying %s %s after %s (attempt %d, waiting %.2f s)",
            method,
            path,
            why,
            attempt,
            delay,
        )
        await asyncio.sleep(delay)

    async def list(
        self, run_id: str, path: str | None = None, *, recursive: bool = False
    ) -> builtins.list[ArtifactInfo]:
        """List the files and folders directly under `path` (all pages).

        Args:
            run_id: The run.
            path: A folder relative to the run's artifact root (None: the root).
            recursive: Also list the contents of every sub-folder.
        """
        run_id = check_run_id(run_id)
        relative = safe_artifact_path(path)
        if not isinstance(recursive, bool):
            raise ValidationException(
                f"recursive must be a bool, got {type(recursive).__name__}"
            )
        entries = await self._list_once(run_id, relative)
        if not recursive:
            return entries
        result: builtins.list[ArtifactInfo] = []
        for entry in entries:
            result.append(entry)
            if entry.is_dir:
                result.extend(await self.list(run_id, entry.path, recursive=True))
        return result

    async def _list_once(
        self, run_id: str, relative: str
    ) -> builtins.list[ArtifactInfo]:
        if listing_drops_start(relative):
            return await self._list_through_proxy(run_id, relative)
        entries: builtins.list[ArtifactInfo] = []
        token: str | None = None
        seen_tokens: set[str] = set()
        while True:
            params: dict[str, object] = {"run_id": run_id}
            if relative:
                params["path"] = relative
            if token:
                params["page_token"] = token
            response = await self._transport.call(
                "GET", "artifacts/list", params=params, not_found=RunNotFoundException
            )
            for entry in parse_items(response, "files", ArtifactInfo.model_validate):
                if _is_listed_file_itself(entry, relative):
                    continue
                _check_listed(entry.path, relative)
                entries.append(entry)
            token = next_page_token(response, seen_tokens)
            if token is None:
                return entries

    async def _list_through_proxy(
        self, run_id: str, relative: str
    ) -> builtins.list[ArtifactInfo]:
        """List one folder with the proxy's ``GET ...?path=<root>/<folder>``.

        This endpoint has no pages and returns base names, which are joined
        to `relative` here as ``artifacts/list`` would.
        """
        root = await self._root(run_id)
        async with self._open(
            "GET", PROXY_PREFIX, params={"path": f"{root}/{relative}"}
        ) as response:
            await response.aread()
        body = parse_json_body(response)
        if body is None:
            raise MLflowException(
                f"the artifact proxy's listing of {relative!r} is not a JSON object",
                error_code="INVALID_RESPONSE",
                status_code=response.status_code,
                method="GET",
                path=PROXY_PREFIX,
            )
        entries: builtins.list[ArtifactInfo] = []
        for entry in parse_items(body, "files", ArtifactInfo.model_validate):
            listed = entry.model_copy(
                update={"path": join_artifact_path(relative, entry.path)}
            )
            _check_listed(listed.path, relative)
            entries.append(listed)
        return entries

    async def upload_file(
        self,
        run_id: str,
        local_path: str | os.PathLike[str],
        artifact_path: str | None = None,
    ) -> str:
        """Upload one file into the folder `artifact_path`; return its artifact path.

        The file is streamed in 1 MB chunks. An existing artifact with the same
        path is replaced.
        """
        run_id = check_run_id(run_id)
        source = check_local_path(local_path, what="local_path")
        if not await anyio.Path(source).is_file():
            raise ValidationException(f"{str(source)!r} is not a file")
        relative = join_artifact_path(safe_artifact_path(artifact_path), source.name)
        await self._put(run_id, source, check_upload_path(relative))
        return relative

    async def _put(self, run_id: str, source: Path, relative: str) -> None:
        url_path = proxy_path(await self._root(run_id), relative)
        async with self._open(
            "PUT",
            url_path,
            body=lambda: _file_chunks(source),
            headers={"Content-Type": "application/octet-stream"},
        ):
            pass
        logger.debug("uploaded %s to run %s as %s", source, run_id, relative)

    async def upload_dir(
        self,
        run_id: str,
        local_dir: str | os.PathLike[str],
        artifact_path: str | None = None,
        *,
        max_concurrency: int = 8,
    ) -> builtins.list[str]:
        """Upload a folder's files, `max_concurrency` at a time; return their paths.

        Every path and symlink is checked before the first upload: a symlink
        that points outside `local_dir` is rejected. Symlinked folders inside
        it are not descended into. On a failure the other uploads are
        cancelled, so some files may already be uploaded.
        """
        run_id = check_run_id(run_id)
        folder = check_local_path(local_dir, what="local_dir")
        check_positive_int(max_concurrency, name="max_concurrency")
        prefix = safe_artifact_path(artifact_path)
        files = await anyio.to_thread.run_sync(collect_upload_files, folder)
        await self._root(run_id)
        targets = [
            (src, check_upload_path(join_artifact_path(prefix, rel)))
            for src, rel in files
        ]

        def job(source: Path, relative: str) -> Callable[[], Awaitable[None]]:
            return lambda: self._put(run_id, source, relative)

        await _run_bounded([job(s, r) for s, r in targets], max_concurrency)
        return [relative for _, relative in targets]

    async def download(
        self,
        run_id: str,
        path: str,
        dst_dir: str | os.PathLike[str],
        *,
        max_concurrency: int = 8,
    ) -> Path:
        """Download a file or a folder to ``dst_dir/<path>``; return that path.

        Each file streams to a temporary file next to its target and is
        renamed into place when complete, so a target is never half-written.
        For a folder, the whole listing is checked before any file is
        written: a name with ``..`` or one that leaves `dst_dir` is rejected.
        """
        run_id = check_run_id(run_id)
        relative = safe_artifact_path(path)
        base = check_local_path(dst_dir, what="dst_dir")
        check_positive_int(max_concurrency, name="max_concurrency")
        await anyio.to_thread.run_sync(check_download_targets, base, [])
        entries = await self.list(run_id, relative or None, recursive=True)
        files = [entry.path for entry in entries if not entry.is_dir]
        if not entries:
            if not relative:
                raise ValidationException(f"run {run_id} has no artifacts")
            files = [relative]
        targets = await anyio.to_thread.run_sync(
            lambda: [(name, safe_local_target(base, name)) for name in files]
        )
        await anyio.to_thread.run_sync(
            check_download_targets, base, [target for _, target in targets]
        )
        root = await self._root(run_id)

        def job(name: str, target: Path) -> Callable[[], Awaitable[None]]:
            return lambda: self._download_file(proxy_path(root, name), target)

        await _run_bounded([job(n, t) for n, t in targets], max_concurrency)
        if relative:
            return await anyio.to_thread.run_sync(safe_local_target, base, relative)
        return Path(await anyio.Path(base).resolve())

    async def _download_file(self, url_path: str, target: Path) -> None:
        try:
            temp_name = await anyio.to_thread.run_sync(_create_temp_file, target)
        except OSError as exc:
            raise _local_write_error(target, exc) from exc
        try:
            async with self._open("GET", url_path) as response:
                async with await anyio.open_file(temp_name, "wb") as handle:
                    async for chunk in response.aiter_bytes(CHUNK_SIZE):
                        await handle.write(chunk)
            try:
                os.replace(temp_name, target)
            except OSError as exc:
                raise _local_write_error(target, exc) from exc
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise


def _create_temp_file(target: Path) -> str:
    """Create the folders of `target` and an empty temporary file next to it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    os.close(descriptor)
    return temp_name


def _local_write_error(target: Path, exc: OSError) -> ValidationException:
    # A file or folder created in the way after the checks, or a folder that
    # is not writable, ends here.
    return ValidationException(
        f"failed to write the downloaded file {str(target)!r}: "
        f"{exc.strerror or type(exc).__name__}; check dst_dir"
    )


def _is_listed_file_itself(entry: ArtifactInfo, requested: str) -> bool:
    """Check whether a listed entry is the requested path itself, as a file.

    MLflow's own artifact stores list a file path as empty, but some (DBFS and
    Azure Blob repositories of older MLflow releases, and servers that
    reimplement the API) return the file itself. Both mean "this is a file".
    """
    if not requested or entry.is_dir:
        return False
    return safe_artifact_path(entry.path, what="artifact path from the server") == (
        requested
    )


def _check_listed(listed: str, requested: str) -> None:
    """Reject a server-listed path that is unsafe or outside the listed folder.

    An empty path, or a folder that lists itself, would make a recursive
    listing loop forever, so those are rejected too.
    """
    checked = safe_artifact_path(listed, what="artifact path from the server")
    if not checked:
        raise ValidationException(
            f"the server listed an empty artifact path {listed!r} under {requested!r}"
        )
    if requested and not checked.startswith(requested + "/"):
        raise ValidationException(
            f"the server listed {listed!r} under {requested!r}, outside that folder"
        )
