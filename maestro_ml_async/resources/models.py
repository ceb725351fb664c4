"""Placeholder: the models sub-client is being written."""

from __future__ import annotations

from ._base import AsyncMlflowResource

__all__ = ["AsyncModelsResource"]


class AsyncModelsResource(AsyncMlflowResource):
    """TODO: not implemented yet."""
