"""Polling engine behind `models.watch`: registry changes found by snapshot diffs.

Each poll takes a snapshot with two searches, each of one page unless there are
more than 10,000 versions or 1000 models:

* ``model-versions/search`` for the watched versions: status, stage and tags.
* ``registered-models/search`` for the watched models: existence, tags and
  aliases. Aliases come from here because ``model-versions/search`` may return
  versions without their aliases.

The new snapshot is compared with the previous one field by field, so every
change between two polls is reported once. ``last_updated_timestamp`` is not
used, because some stores do not bump it when a tag changes. A change that is undone
before the next poll is not seen. Each attribute comes from exactly one of the
two searches. A version counts only when its model is in the same poll's model
search, so a change landing between the two requests shows up in the next poll
instead of twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._exceptions import (
    RateLimitedException,
    ServerUnavailableException,
    TransportException,
    ValidationException,
)
from .._pagination import next_page_token
from .._transport import MlflowTransport
from .._validation import check_name, check_poll_interval
from ..types.events import RegistryEvent, RegistryEventType
from ._poll_backoff import PollBackoff

__all__ = ["watch_registry"]

logger = logging.getLogger(__name__)

PROMPT_TAG = "mlflow.prompt.is_prompt"
_MODELS_PAGE = 1000
_VERSIONS_PAGE = 10_000
_TRANSIENT = (TransportException, ServerUnavailableException, RateLimitedException)


@dataclass(frozen=True)
class _Version:
    status: str
    stage: str
    tags: dict[str, str]


@dataclass(frozen=True)
class _Model:
    tags: dict[str, str]
    aliases: dict[str, str]


@dataclass
class _Snapshot:
    models: dict[str, _Model] = field(default_factory=dict)
    versions: dict[tuple[str, str], _Version] = field(default_factory=dict)


def _tags(items: Any) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value") or "") for t in items or []}


def _name_clause(name: str) -> str:
    """Return a filter clause that matches the model `name`.

    MLflow's filter parser (3.17) does not unescape quotes, so a name with both
    quote characters fits in no literal. It is then matched with LIKE, where
    ``_`` stands for each quote and each backslash (an escape character in
    MySQL's LIKE). The pattern can match other names too, so `_take_snapshot`
    keeps only the exact name.
    """
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    pattern = name.replace("'", "_").replace("\\", "_")
    return f"name LIKE '{pattern}'"


def _filters(name: str | None, filter_string: str | None) -> tuple[str, str]:
    """Return the (models, versions) filter strings."""
    clauses = []
    if name is not None:
        clauses.append(_name_clause(name))
    if filter_string:
        clauses.append(filter_string)
    models_filter = " AND ".join(clauses)
    # A tag clause means model tags to one search and version tags to the
    # other, so the version search then reads all versions and filters here.
    lowered = (filter_string or "").lower()
    if "tag" in lowered:
        versions_filter = _name_clause(name) if name is not None else ""
    else:
        versions_filter = models_filter
    return models_filter, versions_filter


async def _search_all(
    transport: MlflowTransport, endpoint: str, key: str, query: dict[str, object]
) -> list[dict[str, Any]]:
    # NOTE: MLflow pages by offset. When a search needs several pages and a
    # model is created or deleted meanwhile, an item can be skipped: it then
    # shows as deleted for one poll and as created again in the next.
    # A repeated token raises rather than ending the search early: a partial
    # snapshot would report the models on the missing pages as deleted.
    items: list[dict[str, Any]] = []
    seen_tokens: set[str] = set()
    params = {k: v for k, v in query.items() if v}
    while True:
        response = await transport.call("GET", endpoint, params=params, registry=True)
        items.extend(response.get(key, []))
        token = next_page_token(response, seen_tokens)
        if token is None:
            return items
        params["page_token"] = token


async def _take_snapshot(
    transport: MlflowTransport,
    models_filter: str,
    versions_filter: str,
    name: str | None = None,
) -> _Snapshot:
    raw_versions = await _search_all(
        transport,
        "model-versions/search",
        "model_versions",
        {"filter": versions_filter, "max_results": _VERSIONS_PAGE},
    )
    raw_models = await _search_all(
        transport,
        "registered-models/search",
        "registered_models",
        {"filter": models_filter, "max_results": _MODELS_PAGE},
    )
    snapshot = _Snapshot()
    for item in raw_models:
        tags = _tags(item.get("tags"))
        if tags.get(PROMPT_TAG, "").lower() == "true":
            continue
        if name is not None and item["name"] != name:
            continue
        aliases = {
            str(a["alias"]): str(a["version"]) for a in item.get("aliases") or []
        }
        snapshot.models[str(item["name"])] = _Model(tags, aliases)
    for item in raw_versions:
        model_name = str(item["name"])
        if model_name not in snapshot.models:
            continue
        snapshot.versions[(model_name, str(item["version"]))] = _Version(
            status=str(item.get("status") or "READY"),
            stage=str(item.get("current_stage") or "None"),
            tags=_tags(item.get("tags")),
        )
    return snapshot


class _Differ:
    """Builds the events between two snapshots, in a stable order."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.events: list[RegistryEvent] = []

    def emit(
        self,
        kind: RegistryEventType,
        model: str,
        version: str | None = None,
        *,
        key: str | None = None,
        old: str | None = None,
        new: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.events.append(
            RegistryEvent(
                type=kind,
                model_name=model,
                version=version,
                key=key,
                old_value=old,
                new_value=new,
                timestamp=self.now,
                source="poll",
                raw=raw,
            )
        )

    def tags(
        self,
        kind: RegistryEventType,
        model: str,
        version: str | None,
        old: dict[str, str],
        new: dict[str, str],
    ) -> None:
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                self.emit(
                    kind, model, version, key=key, old=old.get(key), new=new.get(key)
                )

    def aliases(self, model: str, old: dict[str, str], new: dict[str, str]) -> None:
        for alias in sorted(old.keys() | new.keys()):
            before, after = old.get(alias), new.get(alias)
            if before == after:
                continue
            if before is None:
                kind = RegistryEventType.ALIAS_SET
            elif after is None:
                kind = RegistryEventType.ALIAS_REMOVED
            else:
                kind = RegistryEventType.ALIAS_MOVED
            self.emit(kind, model, after or before, key=alias, old=before, new=after)

    def version(
        self, model: str, number: str, old: _Version | None, new: _Version
    ) -> None:
        if old is None:
            # The tags seen at creation travel in `raw`, shaped like the data
            # of MLflow's model_version.created webhook payload.
            self.emit(
                RegistryEventType.VERSION_CREATED,
                model,
                number,
                new=new.status,
                raw={"name": model, "version": number, "tags": dict(new.tags)},
            )
        old_status = old.status if old is not None else None
        if new.status != old_status:
            if new.status == "READY":
                self.emit(
                    RegistryEventType.VERSION_READY,
                    model,
                    number,
                    old=old_status,
                    new="READY",
                )
            elif new.status == "FAILED_REGISTRATION":
                self.emit(
                    RegistryEventType.VERSION_FAILED,
                    model,
                    number,
                    old=old_status,
                    new=new.status,
                )
        old_stage = old.stage if old is not None else "None"
        if new.stage != old_stage:
            self.emit(
                RegistryEventType.VERSION_STAGE_CHANGED,
                model,
                number,
                old=old_stage,
                new=new.stage,
            )
        if old is not None:
            self.tags(
                RegistryEventType.VERSION_TAGS_CHANGED,
                model,
                number,
                old.tags,
                new.tags,
            )


def _version_order(item: tuple[str, str]) -> tuple[str, int, str]:
    name, number = item
    return (name, int(number) if number.isdigit() else 0, number)


def diff_snapshots(
    old: _Snapshot, new: _Snapshot, now: datetime
) -> list[RegistryEvent]:
    """Return the events that turn `old` into `new`.

    A new model's or version's tags at first sight belong to its creation
    event, in its `raw` mapping, and are not reported one by one. A deleted
    model's versions and aliases go with it in one MODEL_DELETED event.
    """
    differ = _Differ(now)
    for name in sorted(new.models.keys() - old.models.keys()):
        tags = dict(new.models[name].tags)
        differ.emit(
            RegistryEventType.MODEL_CREATED, name, raw={"name": name, "tags": tags}
        )
    for name in sorted(new.models.keys() & old.models.keys()):
        before, after = old.models[name], new.models[name]
        differ.tags(
            RegistryEventType.MODEL_TAGS_CHANGED, name, None, before.tags, after.tags
        )
    for key in sorted(new.versions, key=_version_order):
        differ.version(key[0], key[1], old.versions.get(key), new.versions[key])
    for key in sorted(old.versions.keys() - new.versions.keys(), key=_version_order):
        if key[0] in new.models:
            differ.emit(RegistryEventType.VERSION_DELETED, key[0], key[1])
    for name in sorted(new.models):
        before_aliases = old.models[name].aliases if name in old.models else {}
        differ.aliases(name, before_aliases, new.models[name].aliases)
    for name in sorted(old.models.keys() - new.models.keys()):
        differ.emit(RegistryEventType.MODEL_DELETED, name)
    return differ.events


async def watch_registry(
    transport: MlflowTransport,
    name: str | None = None,
    filter_string: str | None = None,
    *,
    poll_interval: float = 5.0,
    include_existing: bool = False,
) -> AsyncIterator[RegistryEvent]:
    """Poll the registry and yield each change of the watched models once.

    Args:
        transport: The shared MLflow transport.
        name: Watch only this registered model.
        filter_string: A ``registered-models/search`` filter (``name`` and
            ``tags.<key>`` clauses) that selects the watched models.
        poll_interval: Seconds between polls.
        include_existing: Report what exists at the first poll as created;
            otherwise the first poll is only the baseline.

    A poll that still fails with a connection error, a 5xx or a 429 after the
    transport's retries is logged and skipped, and the wait before the next
    one doubles with each failure in a row (see `PollBackoff`). The next good
    poll compares with the last good snapshot, so no change is lost or
    repeated. The iterator runs until the caller stops it.
    """
    poll_interval = check_poll_interval(poll_interval)
    if name is not None:
        # An empty name matches no model, so the watch would wait forever.
        name = check_name(name)
    if filter_string is not None and not isinstance(filter_string, str):
        raise ValidationException(
            f"filter_string must be a string, got {type(filter_string).__name__}"
        )
    models_filter, versions_filter = _filters(name, filter_string)
    previous: _Snapshot | None = _Snapshot() if include_existing else None
    backoff = PollBackoff(poll_interval, "registry poll", logger)
    while True:
        try:
            current = await _take_snapshot(
                transport, models_filter, versions_filter, name
            )
        except _TRANSIENT as exc:
            await asyncio.sleep(backoff.failed(exc))
            continue
        backoff.succeeded()
        if previous is not None:
            for event in diff_snapshots(previous, current, datetime.now(timezone.utc)):
                yield event
        previous = current
        await asyncio.sleep(poll_interval)
