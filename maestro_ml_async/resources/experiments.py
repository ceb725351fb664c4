"""Placeholder: the experiments sub-client is being written."""

from __future__ import annotations

from ._base import AsyncMlflowResource

__all__ = ["AsyncExperimentsResource"]


class AsyncExperimentsResource(AsyncMlflowResource):
    """TODO: not implemented yet."""
