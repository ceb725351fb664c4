"""Placeholder: the runs sub-client is being written."""

from __future__ import annotations

from ._base import AsyncMlflowResource

__all__ = ["AsyncRunsResource"]


class AsyncRunsResource(AsyncMlflowResource):
    """TODO: not implemented yet."""
