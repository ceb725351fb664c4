"""Input checks that run before any request is sent.

The limits are MLflow 3.x's server-side limits (``mlflow/utils/validation.py``) and
the Kubernetes object name rules, so a bad value fails here with a clear message
instead of as a 400 from the server, or half-way through a batch.
"""

from __future__ import annotations

import enum
import math
import numbers
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

from ._exceptions import ValidationException

__all__ = [
    "MAX_ENTITY_KEY_LENGTH",
    "MAX_REGISTRY_TAG_VALUE_LENGTH",
    "check_alias",
    "check_choice",
    "check_collection",
    "check_entity_key",
    "check_experiment_id",
    "check_experiment_ids",
    "check_filter",
    "check_key_values",
    "check_kubernetes_name",
    "check_kubernetes_names",
    "check_max_results",
    "check_name",
    "check_order_by",
    "check_page_token",
    "check_poll_interval",
    "check_positive_int",
    "check_stage",
    "check_version",
]

MAX_ENTITY_KEY_LENGTH = 250
# MLflow 3.17 checks registered-model and model-version tag values against
# 100,000 characters. Its SQL schema keeps registered-model tag values in a
# 5000-character column, so MySQL or PostgreSQL can still reject a longer one.
MAX_REGISTRY_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
MAX_MODEL_NAME_LENGTH = 256

_ALIAS_PATTERN = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS_PATTERN = re.compile(r"^[vV]\d+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# The characters MLflow 3.17 allows in metric, param and tag keys on a Linux or
# macOS server; a Windows server also rejects ':'. \w includes non-ASCII letters
# and digits, as it does in the server's own Python check.
_ENTITY_KEY_PATTERN = re.compile(r"^[/\w.\- :]*$")

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")

STAGES: dict[str, str] = {
    "none": "None",
    "staging": "Staging",
    "production": "Production",
    "archived": "Archived",
}


def check_name(
    name: object, *, what: str = "model name", blank_ok: bool = False
) -> str:
    """Check a registered model or experiment name and return it unchanged.

    Names are sent exactly as given: leading or trailing spaces, ``/``, ``%`` and
    non-ASCII characters are valid in MLflow and are kept. MLflow 3.17 treats a
    model name of only spaces as missing but stores such an experiment name, so
    `blank_ok` accepts a name of only spaces.
    """
    if not isinstance(name, str):
        raise ValidationException(f"{what} must be a string, got {type(name).__name__}")
    if not name or (not blank_ok and not name.strip()):
        raise ValidationException(f"{what} must not be empty")
    if "\x00" in name:
        raise ValidationException(f"{what} must not contain a NUL character")
    return name


def check_version(version: object) -> str:
    """Check a model version number and return it as the string MLflow uses."""
    if isinstance(version, bool):
        raise ValidationException(
            f"version must be a positive integer, got {version!r}"
        )
    if isinstance(version, int):
        text = str(version)
    elif isinstance(version, str):
        text = version.strip()
    else:
        raise ValidationException(
            f"version must be a positive integer, got {type(version).__name__}"
        )
    if not text.isdigit() or not text.isascii() or int(text) < 1:
        raise ValidationException(
            f"version must be a positive integer, got {version!r}"
        )
    return str(int(text))


def check_alias(alias: object) -> str:
    """Check a model alias against MLflow's rules and return it."""
    if not isinstance(alias, str) or not alias:
        raise ValidationException("alias must be a non-empty string")
    if len(alias) > MAX_ALIAS_LENGTH:
        raise ValidationException(
            f"alias must be at most {MAX_ALIAS_LENGTH} characters, got {len(alias)}"
        )
    if not _ALIAS_PATTERN.match(alias):
        raise ValidationException(
            f"alias {alias!r} is invalid: use letters, digits, '_' and '-' only"
        )
    if alias.lower() == "latest":
        raise ValidationException("alias 'latest' is reserved by MLflow")
    if _VERSION_ALIAS_PATTERN.match(alias):
        raise ValidationException(
            f"alias {alias!r} is reserved: 'v<number>' names a version"
        )
    return alias


def check_stage(stage: object) -> str:
    """Return the canonical spelling of a stage name, accepting any case."""
    if stage is None:
        raise ValidationException(
            "stage must be a string; pass 'None' (in quotes) for the stage "
            "of a version outside Staging and Production"
        )
    if not isinstance(stage, str) or stage.strip().lower() not in STAGES:
        allowed = ", ".join(STAGES.values())
        raise ValidationException(f"stage must be one of {allowed}, got {stage!r}")
    return STAGES[stage.strip().lower()]


def canonical_stage(stage: str | None) -> str:
    """Map a stage from the server to its canonical spelling, or keep it."""
    if stage is None:
        return "None"
    return STAGES.get(stage.lower(), stage)


def check_choice(choices: type[E], value: object, *, what: str) -> E:
    """Return the member of a string enum that `value` names, in any case."""
    if isinstance(value, choices):
        return value
    if isinstance(value, str):
        for member in choices:
            if str(member.value).lower() == value.strip().lower():
                return member
    allowed = ", ".join(str(member.value) for member in choices)
    raise ValidationException(f"{what} must be one of {allowed}, got {value!r}")


def check_tag_key(key: object, *, what: str = "tag key") -> str:
    """Check a tag key: non-empty and within MLflow's key length."""
    if not isinstance(key, str) or not key:
        raise ValidationException(f"{what} must be a non-empty string")
    if len(key) > MAX_ENTITY_KEY_LENGTH:
        raise ValidationException(
            f"{what} {key[:40]!r}... is {len(key)} characters; "
            f"the maximum is {MAX_ENTITY_KEY_LENGTH}"
        )
    return key


def check_entity_key(key: object, *, what: str = "tag key") -> str:
    """Check a metric, param or tag key that is written to the server.

    Besides the length, MLflow checks two rules because it may store keys as
    file names: only letters, digits, ``_``, ``-``, ``.``, space, ``:`` and
    ``/``, and no key that POSIX path normalisation changes (``a//b``, ``x/``,
    ``./x``, ``/x``, ``..``). Checking them here keeps a `log_batch` of several
    requests from failing after its first requests were written.
    """
    checked = check_tag_key(key, what=what)
    if not _ENTITY_KEY_PATTERN.match(checked):
        raise ValidationException(
            f"{what} {checked!r} is invalid: MLflow allows only letters, digits, "
            "'_', '-', '.', ' ', ':' and '/' in keys"
        )
    normalised = posixpath.normpath(checked)
    if (
        normalised != checked
        or normalised == "."
        or normalised.startswith("..")
        or normalised.startswith("/")
    ):
        raise ValidationException(
            f"{what} {checked!r} is invalid: MLflow rejects keys that change as "
            f"file paths, and this one would become {normalised!r}"
        )
    return checked


def check_tag_value(
    key: str,
    value: object,
    *,
    max_length: int = MAX_REGISTRY_TAG_VALUE_LENGTH,
    what: str = "tag",
) -> str:
    """Check a tag (or param) value and return it as a string.

    Numbers (NumPy scalars included), booleans and None become ``str(value)``,
    as MLflow's client writes them, so ``True`` is stored as ``"True"`` and
    None as ``"None"``. A param that MLflow's client logged as None can then be
    logged again with the same value.
    """
    if value is None:
        return "None"
    if not isinstance(value, (str, bool, numbers.Number)):
        raise ValidationException(
            f"value of {what} {key!r} must be a string, a number or a bool, "
            f"got {type(value).__name__}; convert it with str() or json.dumps()"
        )
    text = value if isinstance(value, str) else str(value)
    if len(text) > max_length:
        raise ValidationException(
            f"value of {what} {key!r} is {len(text)} characters; the maximum is "
            f"{max_length}"
        )
    return text


def check_key_values(
    items: Mapping[str, object] | None,
    *,
    max_length: int = MAX_REGISTRY_TAG_VALUE_LENGTH,
    what: str = "tags",
) -> list[dict[str, str]]:
    """Check tags or params and return them in MLflow's ``[{key, value}]`` form.

    Args:
        items: The mapping of key to value, or None for none.
        max_length: The maximum length of a value.
        what: The plural noun in messages, such as ``"tags"`` or ``"params"``.
    """
    if items is None:
        return []
    if not isinstance(items, Mapping):
        raise ValidationException(
            f"{what} must be a mapping of key to value, got {type(items).__name__}"
        )
    result = []
    for key, value in items.items():
        checked = check_tag_key(key, what=f"{what[:-1]} key")
        text = check_tag_value(checked, value, max_length=max_length)
        result.append({"key": checked, "value": text})
    return result


def check_experiment_id(experiment_id: object) -> str:
    """Check an experiment id (a string, or an int as MLflow's client allows)."""
    if isinstance(experiment_id, bool) or not isinstance(experiment_id, (str, int)):
        raise ValidationException(
            f"experiment_id must be a string, got {type(experiment_id).__name__}"
        )
    text = str(experiment_id).strip()
    if not text:
        raise ValidationException("experiment_id must not be empty")
    return text


def check_experiment_ids(experiment_ids: object) -> list[str]:
    """Check a list of experiment ids. One id alone is accepted, as a list of one,
    because MLflow's experiment ids are often passed as ints."""
    if isinstance(experiment_ids, (str, int)) and not isinstance(experiment_ids, bool):
        return [check_experiment_id(experiment_ids)]
    if not isinstance(experiment_ids, Iterable) or isinstance(experiment_ids, bytes):
        raise ValidationException(
            "experiment_ids must be a list of experiment ids, "
            f"got {type(experiment_ids).__name__}"
        )
    return [check_experiment_id(item) for item in experiment_ids]


def check_filter(filter_string: object) -> str | None:
    """Check a search filter: None or a string."""
    if filter_string is None:
        return None
    if not isinstance(filter_string, str):
        raise ValidationException(
            f"filter_string must be a string, got {type(filter_string).__name__}"
        )
    return filter_string.strip() or None


def check_order_by(order_by: object) -> list[str] | None:
    """Check an ``order_by`` argument: None, one clause, or a list of clauses."""
    if order_by is None:
        return None
    clauses = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(clauses, (list, tuple)) or not all(
        isinstance(clause, str) and clause.strip() for clause in clauses
    ):
        raise ValidationException(
            f"order_by must be a list of non-empty strings, got {order_by!r}"
        )
    return [clause.strip() for clause in clauses]


def check_max_results(value: object, *, maximum: int, name: str = "max_results") -> int:
    """Check a page size against the server's limit."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(f"{name} must be an integer, got {value!r}")
    if not 1 <= value <= maximum:
        raise ValidationException(
            f"{name} must be between 1 and {maximum}, got {value}"
        )
    return value


def check_collection(items: Iterable[T], *, what: str) -> list[T]:
    """Return the items of a collection argument as a list.

    A bare ``str`` or ``bytes`` is rejected: iterating it would give one
    character per item, so ``get_many("abc")`` would fetch "a", "b" and "c".
    A mapping is rejected too, because iterating it gives only its keys.
    """
    if isinstance(items, (str, bytes, bytearray, Mapping)) or not isinstance(
        items, Iterable
    ):
        shown = repr(items) if isinstance(items, str) and len(items) <= 40 else ""
        raise ValidationException(
            f"{what} must be a list or another collection, got "
            f"{type(items).__name__} {shown}".rstrip()
            + "; wrap a single item in a list"
        )
    return list(items)


def check_positive_int(value: object, *, name: str) -> int:
    """Check an integer count such as ``max_concurrency``: at least 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationException(
            f"{name} must be an integer, got {type(value).__name__} {value!r:.40}"
        )
    number = int(value)
    if number < 1:
        raise ValidationException(f"{name} must be at least 1, got {number}")
    return number


def check_poll_interval(value: object, *, name: str = "poll_interval") -> float:
    """Check a delay between polls: a finite number of seconds above 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationException(
            f"{name} must be a number of seconds, got {type(value).__name__} "
            f"{value!r:.40}"
        )
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValidationException(
            f"{name} must be a finite number of seconds above 0, got {value!r}"
        )
    return seconds


def check_page_token(value: object) -> str | None:
    """Check a page token from an earlier page: None or a string."""
    if value is None or isinstance(value, str):
        return value or None
    raise ValidationException(
        f"page_token must be a string returned as next_page_token, got "
        f"{type(value).__name__}"
    )


def check_kubernetes_name(
    name: object, *, what: str = "name", max_length: int = 253
) -> str:
    """Check a Kubernetes object name (RFC 1123 label or subdomain).

    A name too long to show in full appears in the message by its first
    characters only.
    """
    if not isinstance(name, str):
        raise ValidationException(
            f"{what} must be a non-empty string, got {type(name).__name__}"
        )
    if not name:
        raise ValidationException(f"{what} must be a non-empty string, got ''")
    if len(name) > max_length:
        raise ValidationException(
            f"{what} {_shorten(name)} is {len(name)} characters; "
            f"the maximum is {max_length}"
        )
    pattern = _DNS_LABEL if max_length <= 63 else _DNS_SUBDOMAIN
    if not pattern.fullmatch(name):
        raise ValidationException(
            f"{what} {name!r} is not a valid Kubernetes name: use lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    return name


def check_kubernetes_names(
    names: object, *, what: str = "names", max_length: int = 253
) -> list[str]:
    """Check a collection of Kubernetes object names and return them as a list.

    A bare string is rejected rather than read as a sequence of one-letter
    names, and every name is checked before the caller sends anything.
    """
    if isinstance(names, (str, bytes)):
        raise ValidationException(
            f"{what} must be a list of names, got the {type(names).__name__} "
            f"{_shorten(names)}; pass [{_shorten(names)}] for one name"
        )
    if isinstance(names, Mapping) or not isinstance(names, Iterable):
        raise ValidationException(
            f"{what} must be a list of names, got {type(names).__name__}"
        )
    singular = what[:-1] if what.endswith("s") else what
    return [
        check_kubernetes_name(name, what=singular, max_length=max_length)
        for name in names
    ]


def _shorten(value: str | bytes, limit: int = 60) -> str:
    """Return the repr of `value`, cut to its first `limit` characters."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}..."
