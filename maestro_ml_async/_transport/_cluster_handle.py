"""A lazy handle on the cluster transport.

Importing kubernetes-asyncio costs about 0.4 s, so the cluster transport is built
the first time a cluster feature runs, not when the client is created.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .._config import Config
from .._exceptions import ClientClosedError

if TYPE_CHECKING:
    from ._kube import ClusterTransport

__all__ = ["ClusterHandle"]


class ClusterHandle:
    """Builds the `ClusterTransport` once, on first use, and closes it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._transport: ClusterTransport | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def loaded(self) -> bool:
        """Whether the cluster transport has been built."""
        return self._transport is not None

    async def get(self) -> ClusterTransport:
        """Return the cluster transport, building it on the first call."""
        if self._closed:
            raise ClientClosedError(
                "the client is closed; create a new AsyncMaestroClient"
            )
        if self._transport is not None:
            return self._transport
        async with self._lock:
            if self._transport is None:
                from ._kube import ClusterTransport

                self._transport = await ClusterTransport.create(self.config)
        return self._transport

    async def aclose(self) -> None:
        """Close the cluster transport if it was built."""
        self._closed = True
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()
