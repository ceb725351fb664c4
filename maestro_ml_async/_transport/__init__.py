"""Transports: the MLflow REST transport here; the cluster transport loads lazily."""

from ._http import API_PREFIX, MlflowTransport, build_http_client
from ._retry import RetryMode

__all__ = ["API_PREFIX", "MlflowTransport", "RetryMode", "build_http_client"]
