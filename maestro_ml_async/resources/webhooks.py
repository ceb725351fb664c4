"""Placeholder: the webhooks sub-client is being written."""

from __future__ import annotations

from ._base import AsyncMlflowResource

__all__ = ["AsyncWebhooksResource"]


class AsyncWebhooksResource(AsyncMlflowResource):
    """TODO: not implemented yet."""
