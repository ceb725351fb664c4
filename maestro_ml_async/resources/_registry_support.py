"""Helpers of the registry sub-client: input checks, prompt hiding and polling."""

from __future__ import annotations

import asyncio
import posixpath
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .._exceptions import (
    InvalidParameterException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
    RegistrationFailedException,
    RegistrationTimeoutException,
    ValidationException,
)
from .._validation import (
    check_collection,
    check_entity_key,
    check_filter,
    check_name,
    check_order_by,
    check_version,
)
from ..types.models import PROMPT_TAG_KEY, Model, ModelVersion

__all__ = [
    "MAX_MODEL_PAGE",
    "MAX_VERSION_PAGE",
    "check_filter",
    "check_new_model_name",
    "check_order_by",
    "check_pairs",
    "check_writable_tag_key",
    "exclude_prompts",
    "reject_prompt_model",
    "reject_prompt_version",
    "wait_until_ready",
    "warn_stages_deprecated",
]

# Per-request page limits of MLflow 3.x: registered-models/search rejects
# max_results above 1000, and model-versions/search above 200000.
MAX_MODEL_PAGE = 1000
MAX_VERSION_PAGE = 200_000

PROMPT_FILTER = f"tags.`{PROMPT_TAG_KEY}` != 'true'"

_STAGES_DEPRECATED = (
    "model registry stages are deprecated since MLflow 2.9; use aliases and tags "
    "instead (set_alias, get_version_by_alias, set_version_tag)"
)

# Polling of a new version: the first check comes after 50 ms, the delay doubles
# up to 1 s.
_POLL_FIRST_DELAY = 0.05
_POLL_MAX_DELAY = 1.0


def warn_stages_deprecated(stacklevel: int) -> None:
    """Emit the DeprecationWarning that MLflow's client emits for stage methods.

    Args:
        stacklevel: Frames between this call and the user's code, plus one.
    """
    warnings.warn(_STAGES_DEPRECATED, DeprecationWarning, stacklevel=stacklevel + 1)


def check_new_model_name(name: object, *, what: str = "model name") -> str:
    """Check the name of a model to create or rename to.

    MLflow 3 rejects a new name that contains ``/`` or ``:``, or that changes
    under POSIX path normalisation (``a//b``, ``.``, ``../x``). Other calls
    pass names through unchecked, so the server decides: MLflow 3.17 rejects
    such names in reads too, while older servers may still hold such models.
    """
    checked = check_name(name, what=what)
    if "/" in checked or ":" in checked:
        raise ValidationException(
            f"{what} {checked!r} is invalid: MLflow names cannot contain '/' or ':'"
        )
    normalised = posixpath.normpath(checked)
    if (
        normalised != checked
        or normalised in (".", "..")
        or normalised.startswith("..")
    ):
        raise ValidationException(
            f"{what} {checked!r} is invalid: it would resolve to the path "
            f"{normalised!r}, which MLflow rejects"
        )
    return checked


def exclude_prompts(filter_string: str | None) -> str:
    """Add the clause that hides prompts to a registry search filter.

    MLflow stores prompts as registered models, and its own client adds the
    same clause. A filter that names the prompt tag itself is kept as given, so
    a caller can still search prompts on purpose.
    """
    if not filter_string:
        return PROMPT_FILTER
    if PROMPT_TAG_KEY in filter_string:
        return filter_string
    return f"{filter_string} AND {PROMPT_FILTER}"


def check_writable_tag_key(key: object) -> str:
    """Check a tag key that the caller sets or deletes on a model or version.

    The prompt marker tag is rejected because setting or deleting it would turn a
    model into a prompt or the other way round.
    """
    checked = check_entity_key(key)
    if checked == PROMPT_TAG_KEY:
        raise ValidationException(
            f"tag {PROMPT_TAG_KEY!r} marks prompts; the models API does not change it"
        )
    return checked


def check_pairs(pairs: Iterable[tuple[str, str | int]]) -> list[tuple[str, str]]:
    """Check ``(name, version)`` pairs of a bulk call before any request."""
    checked: list[tuple[str, str]] = []
    for pair in check_collection(pairs, what="pairs"):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValidationException(f"expected a (name, version) pair, got {pair!r}")
        checked.append((check_name(pair[0]), check_version(pair[1])))
    return checked


def reject_prompt_model(model: Model) -> Model:
    """Return the model, or raise `ModelNotFoundException` when it is a prompt."""
    if model.is_prompt:
        raise ModelNotFoundException(
            f"registered model {model.name!r} not found (it is a prompt)",
            error_code="RESOURCE_DOES_NOT_EXIST",
        )
    return model


def reject_prompt_version(version: ModelVersion) -> ModelVersion:
    """Return the version, or raise `ModelVersionNotFoundException` for a prompt."""
    if version.is_prompt:
        raise ModelVersionNotFoundException(
            f"model version {version.version} of {version.name!r} not found "
            "(it is a prompt version)",
            error_code="RESOURCE_DOES_NOT_EXIST",
        )
    return version


def alias_not_found(exc: InvalidParameterException) -> bool:
    """Return True when a 400 from ``registered-models/alias`` is an unknown alias.

    MLflow 3.17 returns INVALID_PARAMETER_VALUE "Registered model alias <a> not
    found." instead of a 404.
    """
    message = exc.message.lower()
    return "alias" in message and "not found" in message


# Words with which SQLite, PostgreSQL, MySQL and SQL Server report a duplicate
# primary key, matched together with the alias table or its key's name.
_DUPLICATE_KEY_WORDS = ("unique constraint", "duplicate key", "duplicate entry")
_ALIAS_TABLE_NAMES = ("registered_model_aliases", "registered_model_alias_pk")


def alias_insert_conflict(exc: InvalidParameterException) -> bool:
    """Return True when a set-alias failed because another request added it first.

    MLflow 3.17 writes an alias with a read, then an insert or update. Two
    requests that add the same new alias at once both insert, and the loser
    gets BAD_REQUEST carrying the database's unique-key error, for example
    "(sqlite3.IntegrityError) UNIQUE constraint failed:
    registered_model_aliases.workspace, ..." on SQLite.
    """
    if exc.error_code != "BAD_REQUEST":
        return False
    message = exc.message.lower()
    return any(name in message for name in _ALIAS_TABLE_NAMES) and any(
        words in message for words in _DUPLICATE_KEY_WORDS
    )


async def wait_until_ready(
    fetch: Callable[[], Awaitable[ModelVersion]],
    created: ModelVersion,
    timeout: float,
) -> ModelVersion:
    """Poll a new version until READY, with a short doubling delay.

    Raises:
        RegistrationFailedException: The version reached FAILED_REGISTRATION.
        RegistrationTimeoutException: It was still pending after `timeout` s.
    """
    deadline = time.monotonic() + timeout
    delay = _POLL_FIRST_DELAY
    current = created
    while True:
        if current.status == "READY":
            return current
        if current.status == "FAILED_REGISTRATION":
            failed = RegistrationFailedException(
                f"model version {current.version} of {current.name!r} failed to "
                f"register: {current.status_message or 'no reason given'}",
                error_code="FAILED_REGISTRATION",
            )
            failed.name, failed.version = current.name, current.version
            raise failed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = RegistrationTimeoutException(
                f"model version {current.version} of {current.name!r} was still "
                f"{current.status} after {timeout} s"
            )
            timed_out.name, timed_out.version = current.name, current.version
            timed_out.status = current.status
            raise timed_out
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX_DELAY)
        current = await fetch()


def relative_artifact_path(source: str | None, run: dict[str, Any]) -> str | None:
    """Return the version's folder relative to its run's artifact root, if any.

    A source such as ``<artifact_uri>/model`` or ``runs:/<run_id>/model`` gives
    ``model``; a source outside the run's artifacts gives None.
    """
    if not source:
        return None
    info = run.get("info") or {}
    run_id = str(info.get("run_id") or "")
    artifact_uri = str(info.get("artifact_uri") or "").rstrip("/")
    for prefix in (artifact_uri + "/", f"runs:/{run_id}/"):
        if len(prefix) > 1 and source.startswith(prefix):
            return source[len(prefix) :].strip("/") or None
    return None
