"""Data models of the model registry: registered models, versions and run data.

The models parse MLflow's REST JSON directly: tags arrive as ``[{key, value}]``
lists, aliases of a registered model as ``[{alias, version}]`` lists and
timestamps as integer milliseconds. Fields that a newer server adds are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._validation import canonical_stage
from ._wire import drop_null_defaults, key_values_to_dict, ms_to_utc

__all__ = [
    "Model",
    "ModelArtifact",
    "ModelMetrics",
    "ModelSignature",
    "ModelVersion",
    "ms_to_datetime",
]

PROMPT_TAG_KEY = "mlflow.prompt.is_prompt"


# The registry parses the wire format with the same helpers as tracking.
ms_to_datetime = ms_to_utc
tags_to_dict = key_values_to_dict


def is_prompt_tags(tags: Mapping[str, str]) -> bool:
    """Return True when the tags mark a prompt (``mlflow.prompt.is_prompt=true``)."""
    return tags.get(PROMPT_TAG_KEY, "").lower() == "true"


class _RegistryModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_to_defaults(cls, data: Any) -> Any:
        return drop_null_defaults(cls, data)

    @field_validator(
        "creation_timestamp",
        "last_updated_timestamp",
        mode="before",
        check_fields=False,
    )
    @classmethod
    def _parse_timestamp(cls, value: object) -> datetime | None:
        return ms_to_datetime(value)

    @field_validator("tags", mode="before", check_fields=False)
    @classmethod
    def _parse_tags(cls, value: object) -> dict[str, str]:
        return tags_to_dict(value)

    @property
    def is_prompt(self) -> bool:
        """Whether MLflow stores this entry as a prompt rather than a model."""
        tags: dict[str, str] = getattr(self, "tags", {})
        return is_prompt_tags(tags)


class ModelVersion(_RegistryModel):
    """One version of a registered model.

    Attributes:
        name: The registered model's name.
        version: The version number as MLflow sends it, a decimal string.
        current_stage: The canonical stage: None, Staging, Production or Archived.
        status: PENDING_REGISTRATION, READY or FAILED_REGISTRATION.
        aliases: The aliases that point at this version. MLflow leaves them out
            of ``model-versions/search`` results, so they may be empty there.
    """

    name: str
    version: str
    run_id: str | None = None
    current_stage: str = "None"
    status: str = "READY"
    status_message: str | None = None
    creation_timestamp: datetime | None = None
    last_updated_timestamp: datetime | None = None
    source: str | None = None
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    run_link: str | None = None
    user_id: str | None = None
    model_id: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _parse_version(cls, value: object) -> str:
        # MLflow sends the number as a string and some registries as a JSON
        # number. Anything else (null, "", true, 1.5) would break
        # `version_number` and every later request for this version.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return str(value)
        if isinstance(value, str) and value.strip().isdigit() and value.isascii():
            return str(int(value))
        raise ValueError("expected a whole version number")

    @field_validator("current_stage", mode="before")
    @classmethod
    def _parse_stage(cls, value: object) -> str:
        return canonical_stage(value if isinstance(value, str) else None)

    @field_validator("run_id", "run_link", "status_message", "user_id", mode="before")
    @classmethod
    def _empty_to_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("description", mode="before")
    @classmethod
    def _none_to_empty(cls, value: object) -> object:
        return "" if value is None else value

    @property
    def version_number(self) -> int:
        """The version as an integer, for sorting and comparison."""
        return int(self.version)


class Model(_RegistryModel):
    """A registered model.

    Attributes:
        latest_versions: The newest version in each stage, as the server reports
            them (one per stage, not every version).
        aliases: Alias name to version number.
    """

    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    creation_timestamp: datetime | None = None
    last_updated_timestamp: datetime | None = None
    latest_versions: list[ModelVersion] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict)
    user_id: str | None = None

    @field_validator("aliases", mode="before")
    @classmethod
    def _parse_aliases(cls, value: object) -> dict[str, str]:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            return {str(key): str(item) for key, item in value.items()}
        if not isinstance(value, list):
            raise ValueError(f"expected a list of {{alias, version}}, got {value!r}")
        aliases: dict[str, str] = {}
        for entry in value:
            if not isinstance(entry, Mapping) or "alias" not in entry:
                raise ValueError(f"expected an {{alias, version}} entry, got {entry!r}")
            aliases[str(entry["alias"])] = str(entry.get("version", ""))
        return aliases

    @field_validator("description", mode="before")
    @classmethod
    def _none_to_empty(cls, value: object) -> object:
        return "" if value is None else value

    @field_validator("user_id", mode="before")
    @classmethod
    def _empty_to_none(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def latest_version(self) -> ModelVersion | None:
        """The entry of `latest_versions` with the highest version number."""
        if not self.latest_versions:
            return None
        return max(self.latest_versions, key=lambda version: version.version_number)

    @property
    def production_version(self) -> ModelVersion | None:
        """The newest version in the Production stage, if any."""
        return self._latest_in_stage("Production")

    @property
    def staging_version(self) -> ModelVersion | None:
        """The newest version in the Staging stage, if any."""
        return self._latest_in_stage("Staging")

    def _latest_in_stage(self, stage: str) -> ModelVersion | None:
        matching = [v for v in self.latest_versions if v.current_stage == stage]
        if not matching:
            return None
        return max(matching, key=lambda version: version.version_number)


def _parse_schema(value: object) -> list[dict[str, Any]] | None:
    """Parse one signature part: MLmodel files store it as a JSON string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise ValueError(f"expected a JSON list of columns, got {value!r}")
    return [dict(column) for column in value]


class ModelSignature(BaseModel):
    """The input, output and parameter schema of a logged model.

    MLmodel files store each part as a JSON string, for example
    ``inputs: '[{"type": "double", "name": "x"}]'``. Both that string and the
    parsed list are accepted.
    """

    model_config = ConfigDict(extra="ignore")

    inputs: list[dict[str, Any]] | None = None
    outputs: list[dict[str, Any]] | None = None
    params: list[dict[str, Any]] | None = None

    @field_validator("inputs", "outputs", "params", mode="before")
    @classmethod
    def _parse_part(cls, value: object) -> list[dict[str, Any]] | None:
        try:
            return _parse_schema(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"signature part is not valid JSON: {exc}") from None

    @property
    def input_names(self) -> list[str]:
        """The names of the input columns that have one."""
        return [str(col["name"]) for col in self.inputs or [] if "name" in col]

    @property
    def output_names(self) -> list[str]:
        """The names of the output columns that have one."""
        return [str(col["name"]) for col in self.outputs or [] if "name" in col]


class ModelMetrics(BaseModel):
    """The latest metrics of the run behind a model version.

    Attributes:
        metrics: Metric key to its latest value.
        steps: Metric key to the step of that value.
        timestamps: Metric key to the time that value was logged.
        params: The run's parameters.
    """

    model_config = ConfigDict(extra="ignore")

    name: str
    version: str
    run_id: str
    metrics: dict[str, float] = Field(default_factory=dict)
    steps: dict[str, int] = Field(default_factory=dict)
    timestamps: dict[str, datetime] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_run(cls, name: str, version: str, run: Mapping[str, Any]) -> ModelMetrics:
        """Build the metrics from a ``runs/get`` response's ``run`` object."""
        info = run.get("info") or {}
        data = run.get("data") or {}
        metrics: dict[str, float] = {}
        steps: dict[str, int] = {}
        timestamps: dict[str, datetime] = {}
        for metric in data.get("metrics") or []:
            key = str(metric["key"])
            metrics[key] = float(metric.get("value", float("nan")))
            steps[key] = int(metric.get("step", 0))
            when = ms_to_datetime(metric.get("timestamp"))
            if when is not None:
                timestamps[key] = when
        params = tags_to_dict(data.get("params"))
        run_id = str(info.get("run_id") or info.get("run_uuid") or "")
        return cls(
            name=name,
            version=version,
            run_id=run_id,
            metrics=metrics,
            steps=steps,
            timestamps=timestamps,
            params=params,
        )


class ModelArtifact(BaseModel):
    """A file or folder in the artifacts of the run behind a model version.

    Attributes:
        path: The path relative to the run's artifact root.
        file_size: The size in bytes; None for folders.
    """

    model_config = ConfigDict(extra="ignore")

    path: str
    is_dir: bool = False
    file_size: int | None = None
