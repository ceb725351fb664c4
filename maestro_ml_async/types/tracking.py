"""Data models of the tracking server: experiments, runs, metrics and artifacts.

The models parse MLflow's REST JSON directly: tags and params arrive as
``[{key, value}]`` lists and become dicts, and timestamps arrive as integer
milliseconds and become timezone-aware UTC datetimes. Fields that a newer server
adds are ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from ._wire import (
    datetime_to_ms,
    drop_null_defaults,
    float_from_wire,
    key_values_to_dict,
    ms_to_utc,
)

__all__ = [
    "ArtifactInfo",
    "Experiment",
    "LoggedModel",
    "LoggedModelStatus",
    "Metric",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunMetricUpdate",
    "RunStatus",
    "RunStatusChange",
    "RunTag",
    "ViewType",
]


class RunStatus(str, enum.Enum):
    """The status of a run."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        """Whether the run has ended (FINISHED, FAILED or KILLED)."""
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)


class ViewType(str, enum.Enum):
    """The lifecycle stages a search returns."""

    ACTIVE_ONLY = "ACTIVE_ONLY"
    DELETED_ONLY = "DELETED_ONLY"
    ALL = "ALL"


class _TrackingModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_to_defaults(cls, data: Any) -> Any:
        return drop_null_defaults(cls, data)


class Metric(_TrackingModel):
    """One point of a metric: a value at a step and a time."""

    key: str
    value: float
    timestamp: datetime
    step: int = 0
    # Set only when `timestamp` had to be clamped to datetime's range, so that
    # ordering and de-duplication still use the exact value the server stores.
    _raw_timestamp_ms: int | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_clamped_timestamp(cls, data: Any, handler: Any) -> Metric:
        metric: Metric = handler(data)
        raw = data.get("timestamp") if isinstance(data, Mapping) else None
        if isinstance(raw, (int, str)) and not isinstance(raw, bool):
            try:
                milliseconds = int(raw)
            except ValueError:
                return metric
            if datetime_to_ms(metric.timestamp) != milliseconds:
                metric._raw_timestamp_ms = milliseconds
        return metric

    @field_validator("value", mode="before")
    @classmethod
    def _parse_value(cls, value: object) -> float:
        return float_from_wire(value)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _parse_timestamp(cls, value: object) -> datetime | None:
        return ms_to_utc(value)

    @property
    def timestamp_ms(self) -> int:
        """The timestamp in epoch milliseconds, as the server stores it."""
        if self._raw_timestamp_ms is not None:
            return self._raw_timestamp_ms
        return datetime_to_ms(self.timestamp)

    @property
    def sort_key(self) -> tuple[int, int]:
        """The (step, timestamp in ms) pair that orders points of one metric."""
        return (self.step, self.timestamp_ms)


class Param(_TrackingModel):
    """A run parameter; its value is fixed once logged."""

    key: str
    value: str = ""


class RunTag(_TrackingModel):
    """A run tag; setting it again replaces the value."""

    key: str
    value: str = ""


class RunInfo(_TrackingModel):
    """The metadata of a run."""

    run_id: str
    experiment_id: str
    run_name: str = ""
    user_id: str = ""
    status: RunStatus = RunStatus.RUNNING
    start_time: datetime | None = None
    end_time: datetime | None = None
    artifact_uri: str = ""
    lifecycle_stage: str = "active"

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> datetime | None:
        return ms_to_utc(value)


class RunData(_TrackingModel):
    """The data of a run: the latest value of each metric, params and tags."""

    metrics: list[Metric] = Field(default_factory=list)
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("params", "tags", mode="before")
    @classmethod
    def _parse_key_values(cls, value: object) -> dict[str, str]:
        return key_values_to_dict(value)

    @property
    def latest_metrics(self) -> dict[str, Metric]:
        """The latest point of each metric, by key."""
        return {metric.key: metric for metric in self.metrics}


class Run(_TrackingModel):
    """A run with its metadata and data."""

    info: RunInfo
    data: RunData = Field(default_factory=RunData)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.info.run_id

    @property
    def status(self) -> RunStatus:
        """The run's status."""
        return self.info.status


class RunStatusChange(_TrackingModel):
    """A change of a run's status seen by a watcher.

    The first change that a watcher reports has `old_status` None and carries
    the status the run had when watching started.
    """

    run_id: str
    old_status: RunStatus | None
    status: RunStatus
    run: Run


class RunMetricUpdate(_TrackingModel):
    """A new metric point of a run seen by a watcher."""

    run_id: str
    metric: Metric


class Experiment(_TrackingModel):
    """An experiment: a named group of runs with an artifact location."""

    experiment_id: str
    name: str
    artifact_location: str = ""
    lifecycle_stage: str = "active"
    creation_time: datetime | None = None
    last_update_time: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("creation_time", "last_update_time", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> datetime | None:
        return ms_to_utc(value)

    @field_validator("tags", mode="before")
    @classmethod
    def _parse_tags(cls, value: object) -> dict[str, str]:
        return key_values_to_dict(value)


class ArtifactInfo(_TrackingModel):
    """A file or directory in a run's artifacts, by its path from the root."""

    path: str
    is_dir: bool = False
    file_size: int | None = None


class LoggedModelStatus(str, enum.Enum):
    """The upload status of an MLflow 3 logged model."""

    PENDING = "LOGGED_MODEL_PENDING"
    READY = "LOGGED_MODEL_READY"
    UPLOAD_FAILED = "LOGGED_MODEL_UPLOAD_FAILED"
    UNSPECIFIED = "LOGGED_MODEL_STATUS_UNSPECIFIED"


class LoggedModel(_TrackingModel):
    """An MLflow 3 logged model, flattened from the server's ``{info, data}``."""

    model_id: str
    experiment_id: str
    name: str = ""
    artifact_uri: str = ""
    status: LoggedModelStatus = LoggedModelStatus.PENDING
    status_message: str = ""
    creator_id: str = ""
    model_type: str = ""
    source_run_id: str = ""
    creation_time: datetime | None = None
    last_updated_time: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    metrics: list[Metric] = Field(default_factory=list)

    @field_validator("creation_time", "last_updated_time", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> datetime | None:
        return ms_to_utc(value)

    @field_validator("tags", "params", mode="before")
    @classmethod
    def _parse_key_values(cls, value: object) -> dict[str, str]:
        return key_values_to_dict(value)

    @field_validator("metrics", mode="before")
    @classmethod
    def _parse_metrics(cls, value: object) -> object:
        # Logged-model metrics carry more fields (run_id, dataset); keep the point.
        return [] if value is None else value

    @classmethod
    def from_wire(cls, model: dict[str, Any]) -> LoggedModel:
        """Build a logged model from the server's ``model`` object."""
        info = dict(model.get("info") or {})
        data = model.get("data") or {}
        info["creation_time"] = info.pop("creation_timestamp_ms", None)
        info["last_updated_time"] = info.pop("last_updated_timestamp_ms", None)
        info["params"] = info.get("params") or data.get("params")
        info["metrics"] = info.get("metrics") or data.get("metrics")
        return cls.model_validate(info)
