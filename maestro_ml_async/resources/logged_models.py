"""Placeholder: the logged_models sub-client is being written."""

from __future__ import annotations

from ._base import AsyncMlflowResource

__all__ = ["AsyncLoggedModelsResource"]


class AsyncLoggedModelsResource(AsyncMlflowResource):
    """TODO: not implemented yet."""
