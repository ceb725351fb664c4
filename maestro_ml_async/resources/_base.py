"""Base class of the MLflow sub-clients."""

from __future__ import annotations

from urllib.parse import quote

from .._exceptions import ValidationException
from .._transport import MlflowTransport

__all__ = ["AsyncMlflowResource", "object_path"]


def object_path(collection: str, object_id: object, suffix: str, *, what: str) -> str:
    """Build ``<collection>/<id><suffix>`` with the stripped id percent-encoded.

    The id is encoded with no safe characters, so a ``/`` in it cannot reach
    another endpoint.

    Raises:
        ValidationException: The id is not a non-empty string. The message
            calls it `what`, such as "webhook id".
    """
    if not isinstance(object_id, str) or not object_id.strip():
        raise ValidationException(f"invalid {what} {object_id!r}")
    return f"{collection}/{quote(object_id.strip(), safe='')}{suffix}"


class AsyncMlflowResource:
    """A sub-client that talks to MLflow through the shared transport."""

    def __init__(self, transport: MlflowTransport) -> None:
        self._transport = transport
