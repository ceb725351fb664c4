"""The runs sub-client: run lifecycle, logging, metric history and watchers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from datetime import datetime

from .._exceptions import RunNotFoundException, ValidationException
from .._pagination import AsyncPager, Page
from .._transport import RetryMode
from .._validation import (
    check_choice,
    check_entity_key,
    check_experiment_id,
    check_experiment_ids,
    check_filter,
    check_max_results,
    check_order_by,
    check_tag_key,
    check_tag_value,
)
from ..types._wire import datetime_to_ms
from ..types.tracking import Metric, Run, RunInfo, RunStatus, RunStatusChange, ViewType
from ._base import AsyncMlflowResource
from ._log_batch import (
    MAX_PARAM_VALUE_LENGTH,
    MAX_RUN_TAG_VALUE_LENGTH,
    MetricInput,
    ParamsInput,
    TagsInput,
    metric_to_wire,
    normalize_metrics,
    normalize_params,
    normalize_tags,
    split_batch,
)
from ._responses import parse_field, parse_items
from ._run_watch import MAX_HISTORY_PAGE, RunWatchEvent, metric_history, watch_runs

__all__ = ["AsyncRunsResource"]

logger = logging.getLogger(__name__)

MAX_RUNS_PAGE_SIZE = 50_000


def _check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str) or not run_id.strip():
        raise ValidationException(f"run_id must be a non-empty string, got {run_id!r}")
    return run_id.strip()


def _check_run_name(run_name: object) -> str:
    if not isinstance(run_name, str):
        raise ValidationException(
            f"run_name must be a string or None, got {type(run_name).__name__}"
        )
    return run_name


def _to_ms(value: datetime | int, what: str) -> int:
    try:
        ms = datetime_to_ms(value)
    except ValueError as exc:
        raise ValidationException(f"{what} is invalid: {exc}") from None
    # MLflow stores run times as signed 64-bit integers. A larger value is
    # not rejected by the server but read back as 0 or None.
    if ms >= 2**63:
        raise ValidationException(
            f"{what} is {ms} ms, outside the 64-bit integer range that MLflow "
            "stores; pass epoch milliseconds or a datetime"
        )
    return ms


class AsyncRunsResource(AsyncMlflowResource):
    """Runs: create and end them, log metrics, params and tags, and watch them.

    Timestamps are accepted as datetimes (naive ones are taken as UTC) or
    integer epoch milliseconds, and always sent as integer milliseconds. A
    missing run raises `RunNotFoundException`.
    """

    async def create(
        self,
        experiment_id: str,
        *,
        run_name: str | None = None,
        tags: Mapping[str, object] | None = None,
        start_time: datetime | int | None = None,
    ) -> Run:
        """Create a RUNNING run in an experiment and return it.

        Args:
            experiment_id: The experiment that owns the run.
            run_name: A display name; the server picks one when None.
            tags: Run tags (values up to 8000 characters).
            start_time: The start time; now when None.
        """
        when = datetime.now().astimezone() if start_time is None else start_time
        body: dict[str, object] = {
            "experiment_id": check_experiment_id(experiment_id),
            "tags": normalize_tags(tags or {}),
            "start_time": _to_ms(when, "start_time"),
        }
        if run_name is not None:
            body["run_name"] = _check_run_name(run_name)
        response = await self._transport.call(
            "POST", "runs/create", json=body, retry=RetryMode.UNSENT
        )
        return parse_field(response, "run", Run.model_validate)

    async def get(self, run_id: str) -> Run:
        """Return a run with the latest value of each metric, its params and tags."""
        response = await self._transport.call(
            "GET",
            "runs/get",
            params={"run_id": _check_run_id(run_id)},
            not_found=RunNotFoundException,
        )
        return parse_field(response, "run", Run.model_validate)

    async def update(
        self,
        run_id: str,
        *,
        status: RunStatus | str | None = None,
        end_time: datetime | int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        """Change a run's status, end time or name and return its new info."""
        body: dict[str, object] = {"run_id": _check_run_id(run_id)}
        if status is not None:
            body["status"] = check_choice(RunStatus, status, what="status").value
        if end_time is not None:
            body["end_time"] = _to_ms(end_time, "end_time")
        if run_name is not None:
            body["run_name"] = _check_run_name(run_name)
        response = await self._transport.call(
            "POST", "runs/update", json=body, not_found=RunNotFoundException
        )
        return parse_field(response, "run_info", RunInfo.model_validate)

    async def terminate(
        self,
        run_id: str,
        status: RunStatus | str = RunStatus.FINISHED,
        *,
        end_time: datetime | int | None = None,
    ) -> RunInfo:
        """End a run with a terminal status (FINISHED, FAILED or KILLED)."""
        final = check_choice(RunStatus, status, what="status")
        if not final.is_terminal:
            raise ValidationException(
                f"terminate needs FINISHED, FAILED or KILLED, got {final.value}"
            )
        when = end_time if end_time is not None else datetime.now().astimezone()
        return await self.update(run_id, status=final, end_time=when)

    async def delete(self, run_id: str) -> None:
        """Mark a run deleted; `restore` undoes it."""
        await self._transport.call(
            "POST",
            "runs/delete",
            json={"run_id": _check_run_id(run_id)},
            not_found=RunNotFoundException,
        )

    async def restore(self, run_id: str) -> None:
        """Restore a deleted run."""
        await self._transport.call(
            "POST",
            "runs/restore",
            json={"run_id": _check_run_id(run_id)},
            not_found=RunNotFoundException,
        )

    def search(
        self,
        experiment_ids: Sequence[str] | str | int,
        filter_string: str | None = None,
        order_by: Sequence[str] | str | None = None,
        view_type: ViewType | str = ViewType.ACTIVE_ONLY,
        *,
        max_results: int | None = None,
        page_size: int = 1000,
    ) -> AsyncPager[Run]:
        """Search the runs of some experiments, for example ``metrics.loss < 0.1``.

        Args:
            experiment_ids: The experiments to search in, or a single id.
            filter_string: A filter on ``metrics.``, ``params.``, ``tags.`` and
                ``attributes.`` fields.
            order_by: One clause such as ``"metrics.loss ASC"``, or a list.
            view_type: Active, deleted or all runs.
            max_results: Stop after this many runs (None: all).
            page_size: Runs per request (1 to 50,000).

        Raises:
            ValidationException: An argument is invalid. No request is sent then.
        """
        ids = check_experiment_ids(experiment_ids)
        query = check_filter(filter_string)
        clauses = check_order_by(order_by) or []
        size = check_max_results(
            page_size, maximum=MAX_RUNS_PAGE_SIZE, name="page_size"
        )
        if max_results is not None:
            size = min(size, check_max_results(max_results, maximum=2**31 - 1))
        view = check_choice(ViewType, view_type, what="view_type")

        async def fetch(token: str | None) -> Page[Run]:
            body: dict[str, object] = {
                "experiment_ids": ids,
                "run_view_type": view.value,
                "max_results": size,
                "order_by": clauses,
            }
            if query:
                body["filter"] = query
            if token:
                body["page_token"] = token
            response = await self._transport.call("POST", "runs/search", json=body)
            items = parse_items(response, "runs", Run.model_validate)
            return Page(items, response.get("next_page_token"), response)

        return AsyncPager(fetch, max_results=max_results)

    async def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        *,
        step: int = 0,
        timestamp: datetime | int | None = None,
    ) -> None:
        """Append one metric point (timestamp now when None).

        The request is retried only when it cannot have reached the server.
        MLflow 3.17's SQL store merges an identical point, but a store that
        appends rows would keep a repeated one twice.
        """
        body = metric_to_wire(key, value, timestamp, step)
        body["run_id"] = _check_run_id(run_id)
        await self._transport.call(
            "POST",
            "runs/log-metric",
            json=body,
            retry=RetryMode.UNSENT,
            not_found=RunNotFoundException,
        )

    async def log_param(self, run_id: str, key: str, value: object) -> None:
        """Log a param; logging the same value again is a no-op, a new value fails."""
        checked = check_entity_key(key, what="param key")
        text = check_tag_value(
            checked, value, max_length=MAX_PARAM_VALUE_LENGTH, what="param"
        )
        await self._transport.call(
            "POST",
            "runs/log-parameter",
            json={"run_id": _check_run_id(run_id), "key": checked, "value": text},
            not_found=RunNotFoundException,
        )

    async def set_tag(self, run_id: str, key: str, value: object) -> None:
        """Set a run tag (values up to 8000 characters)."""
        checked = check_entity_key(key)
        text = check_tag_value(checked, value, max_length=MAX_RUN_TAG_VALUE_LENGTH)
        await self._transport.call(
            "POST",
            "runs/set-tag",
            json={"run_id": _check_run_id(run_id), "key": checked, "value": text},
            not_found=RunNotFoundException,
        )

    async def delete_tag(self, run_id: str, key: str) -> None:
        """Delete a run tag."""
        await self._transport.call(
            "POST",
            "runs/delete-tag",
            json={"run_id": _check_run_id(run_id), "key": check_tag_key(key)},
            not_found=RunNotFoundException,
        )

    async def log_batch(
        self,
        run_id: str,
        metrics: Iterable[MetricInput] = (),
        params: ParamsInput = (),
        tags: TagsInput = (),
    ) -> int:
        """Log any number of metrics, params and tags; return the request count.

        The entities are split into requests within the server's limits: 1000
        metrics, 100 params, 100 tags and 1000 entities in all, and 1 MB of
        JSON per request. Everything is checked before the first request.

        Args:
            run_id: The run to log to.
            metrics: `Metric` objects, ``{key, value, timestamp?, step?}``
                mappings or ``(key, value[, timestamp[, step]])`` tuples.
                A missing timestamp means now; a missing step means 0.
            params: A mapping, or `Param` objects, mappings or pairs.
            tags: A mapping, or `RunTag` objects, mappings or pairs.

        Raises:
            ValidationException: An entity is invalid, or a param key repeats
                with a different value.
            MLflowException: A request failed. The requests before it were
                written, so the batch can be partly logged. Sending the whole
                batch again is safe on MLflow's SQL store, which merges
                identical params, tags and metric points.
        """
        checked_id = _check_run_id(run_id)
        chunks = split_batch(
            normalize_metrics(metrics), normalize_params(params), normalize_tags(tags)
        )
        for index, chunk in enumerate(chunks):
            retry = RetryMode.UNSENT if chunk["metrics"] else RetryMode.SAFE
            try:
                await self._transport.call(
                    "POST",
                    "runs/log-batch",
                    json={"run_id": checked_id, **chunk},
                    retry=retry,
                    not_found=RunNotFoundException,
                )
            except Exception:
                logger.warning(
                    "log_batch request %d of %d for run %s failed; "
                    "the %d before it were written",
                    index + 1,
                    len(chunks),
                    checked_id,
                    index,
                )
                raise
        return len(chunks)

    def get_metric_history(
        self, run_id: str, key: str, *, page_size: int = MAX_HISTORY_PAGE
    ) -> AsyncPager[Metric]:
        """Return every point of a metric, fetched page by page.

        MLflow 3's SQL store returns points ordered by timestamp, then step;
        sort by `Metric.sort_key` for (step, timestamp) order.
        """
        check_max_results(page_size, maximum=MAX_HISTORY_PAGE, name="page_size")
        checked = check_tag_key(key, what="metric key")
        return metric_history(
            self._transport, _check_run_id(run_id), checked, page_size=page_size
        )

    async def watch_metrics(
        self,
        run_id: str,
        keys: Collection[str] | None = None,
        *,
        poll_interval: float = 1.0,
        include_existing: bool = True,
    ) -> AsyncIterator[Metric]:
        """Yield each metric point of a run once, until the run ends or is deleted.

        A poll costs one ``runs/get`` request, plus one history request for
        each watched key whose latest point changed since the last poll. When
        the run reaches a terminal status or is deleted, every watched key's
        history is read once more, so points logged just before the end are
        not lost, and the iterator ends. A poll that fails after the
        transport's retries with a connection error, a 5xx or a 429 is
        repeated after `poll_interval`.

        Points are yielded in (step, timestamp) order within a poll. A point
        logged with a lower step than the latest one of its key is found only
        by that final read.

        Args:
            run_id: The run to watch.
            keys: Only these metric keys (None: all); a string is one key.
            poll_interval: Seconds between polls.
            include_existing: Also yield the points logged before watching.
        """
        async for event in watch_runs(
            self._transport,
            [_check_run_id(run_id)],
            keys=keys,
            poll_interval=poll_interval,
            statuses=False,
            include_existing=include_existing,
        ):
            if not isinstance(event, RunStatusChange):
                yield event.metric

    async def watch_run(
        self, run_id: str, *, poll_interval: float = 1.0
    ) -> AsyncIterator[RunStatusChange]:
        """Yield the run's status now and each change after it, until it ends.

        Each poll costs one ``runs/get`` request. A change that is undone
        between two polls is not seen. Deleting the run ends the iterator
        without a further event.
        """
        async for event in watch_runs(
            self._transport,
            [_check_run_id(run_id)],
            poll_interval=poll_interval,
            metrics=False,
        ):
            if isinstance(event, RunStatusChange):
                yield event

    async def watch_many(
        self,
        run_ids: Collection[str],
        *,
        keys: Collection[str] | None = None,
        poll_interval: float = 1.0,
        metrics: bool = True,
        include_existing: bool = True,
    ) -> AsyncIterator[RunWatchEvent]:
        """Watch several runs in one polling loop, without a task per run.

        Yields `RunStatusChange` and (with `metrics`) `RunMetricUpdate` events
        and ends when every run has reached a terminal status or is deleted.
        The first poll reads each run once to learn its experiment. After
        that, each poll costs one ``runs/search`` request for all runs, plus
        one history request for each key whose latest point changed.
        """
        async for event in watch_runs(
            self._transport,
            run_ids,
            keys=keys,
            poll_interval=poll_interval,
            metrics=metrics,
            include_existing=include_existing,
        ):
            yield event
