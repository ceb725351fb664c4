"""The exception hierarchy of the SDK.

Every error that the SDK raises on purpose derives from `MaestroMLException`, so
``except MaestroMLException`` catches all of them. HTTP failures carry the status
code, the server's error code and message, and the request method and path, but
never a credential or a query string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AlreadyExistsException",
    "AuthenticationException",
    "AuthorizationException",
    "BulkOperationError",
    "ClientClosedError",
    "ConfigurationException",
    "ConflictException",
    "DeploymentException",
    "ExperimentNotFoundException",
    "InvalidParameterException",
    "KubernetesAuthException",
    "KubernetesConflictException",
    "KubernetesException",
    "KubernetesNotFoundException",
    "MLflowException",
    "MaestroMLException",
    "ModelNotFoundException",
    "ModelVersionNotFoundException",
    "NotFoundException",
    "NotSupportedByServerException",
    "RateLimitedException",
    "RegistrationFailedException",
    "RegistrationTimeoutException",
    "RequestTimeoutException",
    "RunNotFoundException",
    "ServerUnavailableException",
    "TimeoutException",
    "TrainingException",
    "TransportException",
    "ValidationException",
]


class MaestroMLException(Exception):
    """Base class of every error raised by the SDK."""


class ConfigurationException(MaestroMLException):
    """A configuration value is missing or invalid."""


class ValidationException(MaestroMLException, ValueError):
    """An argument or a server-side parameter is invalid.

    Raised before any request is sent when the SDK can check the input itself,
    and for the server's INVALID_PARAMETER_VALUE otherwise.
    """


class ClientClosedError(MaestroMLException, RuntimeError):
    """The client was used after `aclose()` or outside its context manager."""


class TimeoutException(MaestroMLException, TimeoutError):
    """An operation did not finish within its time limit."""


class RegistrationTimeoutException(TimeoutException):
    """A new model version did not become READY within the wait timeout.

    Attributes:
        name: The registered model's name.
        version: The version that was still pending.
        status: The last status seen, usually PENDING_REGISTRATION.
    """

    name: str | None = None
    version: str | None = None
    status: str | None = None


class APIStatusMixin:
    """Fields shared by errors that come from an HTTP response."""

    status_code: int | None
    error_code: str | None
    method: str | None
    path: str | None


# A run of non-space characters longer than this is shortened in messages.
_LONG_WORD = re.compile(r"\S{201,}")


class MLflowException(MaestroMLException):
    """An MLflow REST call failed.

    Attributes:
        status_code: The HTTP status, or None when no response arrived.
        error_code: MLflow's ``error_code`` (for example RESOURCE_DOES_NOT_EXIST),
            or a code derived from the status when the body was not MLflow JSON.
        message: The server's message, or a description of the transport failure.
            It is kept in full; ``str()`` of the exception shortens a word of
            more than 200 characters, such as a very long name.
        method: The HTTP method of the failed request.
        path: The URL path of the failed request, without the query string.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.method = method
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        parts: list[str] = []
        message = _shorten_long_words(self.message)
        if self.error_code:
            parts.append(f"{self.error_code}: {message}")
        else:
            parts.append(message)
        where = " ".join(p for p in (self.method, self.path) if p)
        if self.status_code is not None:
            parts.append(f"(HTTP {self.status_code} on {where})" if where else "")
        elif where:
            parts.append(f"(on {where})")
        return " ".join(p for p in parts if p)

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "status_code": self.status_code,
            "error_code": self.error_code,
            "method": self.method,
            "path": self.path,
        }
        return (_rebuild, (type(self), self.message, kwargs))


def _shorten_long_words(text: str) -> str:
    """Cut each run of more than 200 non-space characters to its start and end.

    MLflow repeats the name or id it did not find in its message, so a
    10,000-character name would fill the terminal. `MLflowException.message`
    keeps the full text.
    """
    return _LONG_WORD.sub(_shortened, text)


def _shortened(match: re.Match[str]) -> str:
    word = match.group()
    return f"{word[:80]}...{word[-20:]} ({len(word)} characters)"


def _rebuild(cls: type[MLflowException], message: str, kwargs: dict[str, Any]) -> Any:
    return cls(message, **kwargs)


class TransportException(MLflowException):
    """No usable response arrived: the connection failed or was reset."""


class RequestTimeoutException(TransportException, TimeoutException):
    """The request timed out before the server responded."""


class NotFoundException(MLflowException):
    """The server reported RESOURCE_DOES_NOT_EXIST or an unknown endpoint."""


class ModelNotFoundException(NotFoundException):
    """The registered model does not exist (or is a prompt, hidden from models)."""


class ModelVersionNotFoundException(NotFoundException):
    """The model version, or the alias that should point at one, does not exist."""


class ExperimentNotFoundException(NotFoundException):
    """The experiment does not exist."""


class RunNotFoundException(NotFoundException):
    """The run does not exist."""


class RegistrationFailedException(MLflowException):
    """A new model version ended in FAILED_REGISTRATION.

    Attributes:
        name: The registered model's name.
        version: The version that failed.
    """

    name: str | None = None
    version: str | None = None


class AlreadyExistsException(MLflowException):
    """The server reported RESOURCE_ALREADY_EXISTS."""


class ConflictException(MLflowException):
    """The server reported a conflicting concurrent change (HTTP 409)."""


class AuthenticationException(MLflowException):
    """The server rejected the credentials (HTTP 401)."""


class AuthorizationException(MLflowException):
    """The credentials are valid but lack permission (HTTP 403)."""


class RateLimitedException(MLflowException):
    """The server kept returning 429 after every retry.

    Attributes:
        retry_after: The last ``Retry-After`` delay in seconds, if the server sent one.
    """

    retry_after: float | None = None


class ServerUnavailableException(MLflowException):
    """The server kept returning 5xx after every retry."""


class NotSupportedByServerException(MLflowException):
    """The server does not offer this feature (an older MLflow, or it is disabled)."""


class InvalidParameterException(MLflowException, ValidationException):
    """The server reported INVALID_PARAMETER_VALUE or BAD_REQUEST."""


class KubernetesException(MaestroMLException):
    """A Kubernetes API call failed.

    Attributes:
        status_code: The HTTP status from the API server, if any.
        reason: The ``reason`` of the Status body (NotFound, Conflict, Expired, ...).
        message: The ``message`` of the Status body, or a description.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.reason = reason
        prefix = f"{reason}: " if reason else ""
        suffix = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"{prefix}{message}{suffix}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_kube,
            (type(self), self.message, self.status_code, self.reason),
        )


def _rebuild_kube(
    cls: type[KubernetesException],
    message: str,
    status_code: int | None,
    reason: str | None,
) -> Any:
    return cls(message, status_code=status_code, reason=reason)


class KubernetesNotFoundException(KubernetesException, NotFoundException):
    """The Kubernetes object does not exist (HTTP 404)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 404,
        reason: str | None = "NotFound",
    ) -> None:
        KubernetesException.__init__(
            self, message, status_code=status_code, reason=reason
        )
        # MLflowException.__init__ runs inside the call above (it follows
        # KubernetesException in the MRO) and resets these fields.
        self.message = message
        self.status_code = status_code
        self.reason = reason
        self.error_code = "NOT_FOUND"
        self.method = None
        self.path = None


class KubernetesConflictException(KubernetesException):
    """The write lost a race (HTTP 409 Conflict) or the object already exists."""


class KubernetesAuthException(KubernetesException):
    """The API server rejected the credentials (401) or the permission (403)."""


class TrainingException(MaestroMLException):
    """A training job failed or could not be submitted.

    Attributes:
        job_name: The name of the job, if known.
        reason: The operator's reason (for example PyTorchJobFailed).
    """

    def __init__(
        self,
        message: str,
        *,
        job_name: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.job_name = job_name
        self.reason = reason
        super().__init__(message)


class DeploymentException(MaestroMLException):
    """A deployment failed, could not be created, or could not become ready.

    Attributes:
        deployment_name: The InferenceService name, if known.
        reasons: The controller's reasons for each condition that is not true.
    """

    def __init__(
        self,
        message: str,
        *,
        deployment_name: str | None = None,
        reasons: Sequence[str] = (),
    ) -> None:
        self.deployment_name = deployment_name
        self.reasons = list(reasons)
        super().__init__(message)


class BulkOperationError(MaestroMLException):
    """At least one item of a bulk operation failed.

    Attributes:
        results: One entry per input item, in input order: the item's value, or
            the exception it raised.
    """

    def __init__(self, results: Sequence[object]) -> None:
        self.results = list(results)
        self.errors = [r for r in self.results if isinstance(r, BaseException)]
        first = self.errors[0] if self.errors else None
        super().__init__(
            f"{len(self.errors)} of {len(self.results)} items failed; "
            f"first error: {first!r}"
        )
