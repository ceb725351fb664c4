"""Registry events, produced both by polling (`models.watch`) and by webhooks.

A service can switch from polling to webhook deliveries without changing its
handler, because both sources produce `RegistryEvent`. Polling reports more
than a webhook does: old values, moves of an alias, stage changes, status changes
and deletions. A webhook delivery has no old value, so `old_value` is None for
events with ``source == "webhook"``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RegistryEvent", "RegistryEventType"]


class RegistryEventType(str, enum.Enum):
    """The kind of change in the model registry."""

    MODEL_CREATED = "MODEL_CREATED"
    MODEL_DELETED = "MODEL_DELETED"
    MODEL_TAGS_CHANGED = "MODEL_TAGS_CHANGED"
    VERSION_CREATED = "VERSION_CREATED"
    VERSION_READY = "VERSION_READY"
    VERSION_FAILED = "VERSION_FAILED"
    VERSION_STAGE_CHANGED = "VERSION_STAGE_CHANGED"
    VERSION_TAGS_CHANGED = "VERSION_TAGS_CHANGED"
    VERSION_DELETED = "VERSION_DELETED"
    ALIAS_SET = "ALIAS_SET"
    ALIAS_MOVED = "ALIAS_MOVED"
    ALIAS_REMOVED = "ALIAS_REMOVED"


class RegistryEvent(BaseModel):
    """One change of a registered model, a version, a tag or an alias.

    Attributes:
        type: What changed.
        model_name: The registered model's name.
        version: The version concerned; for alias events the version the alias
            points at now (or pointed at, for ALIAS_REMOVED).
        key: The tag key (tag events) or the alias (alias events).
        old_value: The previous value: tag value, stage, status or version
            number. None when there was none or the source cannot know it.
        new_value: The new value; None when a tag or alias was removed.
        timestamp: When the change was seen (polling) or sent (webhook), UTC.
        source: ``"poll"`` or ``"webhook"``.
        raw: The webhook payload's ``data`` object. Polled MODEL_CREATED and
            VERSION_CREATED events carry ``name``, ``version`` (for versions)
            and the ``tags`` seen at creation in the same form; other polled
            events carry None.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: RegistryEventType
    model_name: str
    version: str | None = None
    key: str | None = None
    old_value: str | None = None
    new_value: str | None = None
    timestamp: datetime
    source: Literal["poll", "webhook"]
    raw: dict[str, Any] | None = Field(default=None, repr=False)
