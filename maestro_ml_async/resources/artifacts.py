"""Placeholder: the artifacts sub-client is being written."""

from __future__ import annotations

from ._base import AsyncMlflowResource

__all__ = ["AsyncArtifactsResource"]


class AsyncArtifactsResource(AsyncMlflowResource):
    """TODO: not implemented yet."""
