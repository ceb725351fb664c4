"""Base class of the MLflow sub-clients."""

from __future__ import annotations

from .._transport import MlflowTransport

__all__ = ["AsyncMlflowResource"]


class AsyncMlflowResource:
    """A sub-client that talks to MLflow through the shared transport."""

    def __init__(self, transport: MlflowTransport) -> None:
        self._transport = transport
