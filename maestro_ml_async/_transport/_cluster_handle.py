"""A lazy handle on the cluster transport.

Importing kubernetes-asyncio costs about 0.4 s, so the cluster transport is built
the first time a cluster feature runs, not when the client is created.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .._config import Config
from .._exceptions import ClientClosedError

if TYPE_CHECKING:
    from ._kube import ClusterTransport

__all__ = ["ClusterHandle"]

logger = logging.getLogger(__name__)


class ClusterHandle:
    """Builds the `ClusterTransport` on first use, and again on a new event loop.

    The transport's aiohttp session, its watch tasks and its locks belong to
    the event loop that built them. When the client is used on another loop
    after that loop ended (a second ``asyncio.run``), the old transport is
    dropped and a new one is built. Use from a second loop while the first
    still runs raises `ClientClosedError`.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self._transport: ClusterTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def loaded(self) -> bool:
        """Whether the cluster transport has been built."""
        return self._transport is not None

    async def get(self) -> ClusterTransport:
        """Return the cluster transport, building it on the first call.

        Raises:
            ClientClosedError: The client was closed, or its transport is in
                use on another event loop that is still running.
        """
        if self._closed:
            raise ClientClosedError(
                "the client is closed; create a new AsyncMaestroClient"
            )
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            await self._move_to_loop(loop)
        if self._transport is not None:
            return self._transport
        async with self._lock:
            if self._transport is None:
                from ._kube import ClusterTransport

                self._transport = await ClusterTransport.create(self.config)
        return self._transport

    async def _move_to_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = self._loop
        if previous is not None and previous.is_running():
            raise ClientClosedError(
                "this AsyncMaestroClient is bound to another event loop; create "
                "one client per event loop (or use MaestroClient from threads)"
            )
        self._loop = loop
        self._lock = asyncio.Lock()
        transport, self._transport = self._transport, None
        if transport is not None:
            logger.debug("event loop changed; building a new cluster transport")
            await _release_ended(transport, previous)

    async def aclose(self) -> None:
        """Close the cluster transport if it was built.

        A transport whose event loop has ended is only released, because its
        connections can be closed on that loop alone.
        """
        self._closed = True
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if self._loop is not asyncio.get_running_loop():
            await _release_ended(transport, self._loop)
            return
        await transport.aclose()


async def _release_ended(
    transport: ClusterTransport, loop: asyncio.AbstractEventLoop | None
) -> None:
    """Mark the aiohttp session of a transport whose loop has ended as closed.

    On a closed loop, aiohttp (checked with 3.14) marks the connector closed
    without touching its connections, which silences the "Unclosed client
    session" error at garbage collection. On a loop that ended but was not
    closed, the connections' futures belong to that loop, so nothing is done.
    """
    if loop is None or not loop.is_closed():
        return
    try:
        await transport.api_client.close()
    except RuntimeError as exc:
        logger.debug("closing the session of an ended event loop failed: %s", exc)
