"""Data models of registry webhooks (MLflow 3.3 and newer)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._wire import drop_null_defaults, ms_to_utc

__all__ = [
    "Webhook",
    "WebhookAction",
    "WebhookEntity",
    "WebhookEvent",
    "WebhookStatus",
    "WebhookTestResult",
]


class WebhookEntity(str, enum.Enum):
    """The kind of registry object a webhook event is about (REST spelling)."""

    REGISTERED_MODEL = "REGISTERED_MODEL"
    MODEL_VERSION = "MODEL_VERSION"
    MODEL_VERSION_TAG = "MODEL_VERSION_TAG"
    MODEL_VERSION_ALIAS = "MODEL_VERSION_ALIAS"
    PROMPT = "PROMPT"
    PROMPT_VERSION = "PROMPT_VERSION"
    PROMPT_TAG = "PROMPT_TAG"
    PROMPT_VERSION_TAG = "PROMPT_VERSION_TAG"
    PROMPT_ALIAS = "PROMPT_ALIAS"


class WebhookAction(str, enum.Enum):
    """The action on the entity (REST spelling)."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    SET = "SET"


class WebhookStatus(str, enum.Enum):
    """Whether the server delivers a webhook's events."""

    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class WebhookEvent(BaseModel):
    """An (entity, action) pair that a webhook subscribes to."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    entity: WebhookEntity
    action: WebhookAction

    @field_validator("entity", "action", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        # Deliveries spell them in lowercase ("model_version"), REST in uppercase.
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def parse(cls, text: str) -> WebhookEvent:
        """Parse ``"model_version.created"`` (the documented spelling)."""
        entity, sep, action = text.partition(".")
        if not sep:
            raise ValueError(f"expected 'entity.action', got {text!r}")
        return cls(entity=entity, action=action)

    def to_wire(self) -> dict[str, str]:
        """Return the REST form ``{"entity": ..., "action": ...}``."""
        return {"entity": self.entity.value, "action": self.action.value}

    def __str__(self) -> str:
        return f"{self.entity.value.lower()}.{self.action.value.lower()}"


class Webhook(BaseModel):
    """A registered webhook. The server never returns the secret."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _nulls_to_defaults(cls, data: Any) -> Any:
        return drop_null_defaults(cls, data)

    webhook_id: str
    name: str
    url: str
    events: list[WebhookEvent] = Field(default_factory=list)
    description: str = ""
    status: WebhookStatus = WebhookStatus.ACTIVE
    creation_timestamp: datetime | None = None
    last_updated_timestamp: datetime | None = None

    @field_validator("creation_timestamp", "last_updated_timestamp", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> datetime | None:
        return ms_to_utc(value)


class WebhookTestResult(BaseModel):
    """The outcome of the server's test delivery to a webhook's URL."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _nulls_to_defaults(cls, data: Any) -> Any:
        return drop_null_defaults(cls, data)

    success: bool = False
    response_status: int | None = None
    response_body: str | None = None
    error_message: str | None = None
