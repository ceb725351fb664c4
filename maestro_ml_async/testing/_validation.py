"""Name validation and create-time defaults of the fake API server."""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

from . import _status
from ._resources import ResourceType

_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# The API server's wording for DNS-1123 names (k8s.io/apimachinery validation).
_SUBDOMAIN_TEXT = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character "
    "(e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_TEXT = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
    "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
    "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)

# generateName suffixes use consonants and digits only, like the API server, so a
# random suffix never spells a word.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LENGTH = 5
# The API server cuts a generateName prefix to 58 characters, so a generated
# name fits in 63 (apiserver's SimpleNameGenerator), whatever the type.
_MAX_GENERATED_PREFIX = 63 - _SUFFIX_LENGTH


def name_problems(rtype: ResourceType, name: str) -> list[str]:
    """Return the validation messages for ``name``, empty when it is valid.

    Namespaces need a DNS-1123 label (at most 63 characters), and every other
    type a DNS-1123 subdomain (at most 253 characters).
    """
    problems: list[str] = []
    if rtype.key == "namespaces":
        if len(name) > 63:
            problems.append("must be no more than 63 characters")
        if not _LABEL.match(name):
            problems.append(_LABEL_TEXT)
    else:
        if len(name) > 253:
            problems.append("must be no more than 253 characters")
        if not _SUBDOMAIN.match(name):
            problems.append(_SUBDOMAIN_TEXT)
    return problems


def resolve_name(rtype: ResourceType, metadata: dict[str, Any]) -> str:
    """Return the object's name, generating one from ``generateName`` if needed.

    Raises:
        StoreError: 422 Invalid when the name is missing or not a DNS-1123 name.
    """
    name = metadata.get("name") or ""
    if not name:
        prefix = metadata.get("generateName") or ""
        if not prefix:
            cause = (
                "FieldValueRequired",
                "metadata.name",
                "Required value: name or generateName is required",
            )
            raise _status.StoreError(_status.invalid(rtype, "", [cause]))
        suffix = "".join(
            secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LENGTH)
        )
        name = prefix[:_MAX_GENERATED_PREFIX] + suffix
    problems = name_problems(rtype, name)
    if problems:
        causes = [
            ("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {text}')
            for text in problems
        ]
        raise _status.StoreError(_status.invalid(rtype, name, causes))
    return str(name)


def fold_string_data(obj: dict[str, Any]) -> None:
    """Move a Secret's ``stringData`` into base64 ``data``, as the server does."""
    string_data = obj.pop("stringData", None)
    if not isinstance(string_data, dict):
        return
    data = obj.setdefault("data", {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()


def apply_create_defaults(rtype: ResourceType, obj: dict[str, Any], uid: str) -> None:
    """Set the fields that a real API server fills in when it creates an object.

    Status subresources start empty (a Pod starts ``Pending``, a Namespace
    ``Active``), and a ``batch/v1`` Job gets its controller-uid selector and labels.
    """
    if rtype.has_status:
        obj.pop("status", None)
    if rtype.key == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        obj.setdefault("spec", {}).setdefault("restartPolicy", "Always")
    elif rtype.key == "namespaces":
        obj["status"] = {"phase": "Active"}
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif rtype.key == "jobs.batch":
        _default_job(obj, uid)
    elif rtype.key == "secrets":
        obj.setdefault("type", "Opaque")
    elif rtype.key == "persistentvolumeclaims":
        obj["status"] = {"phase": "Pending"}
    if rtype.key == "secrets":
        fold_string_data(obj)


def _default_job(obj: dict[str, Any], uid: str) -> None:
    name = obj["metadata"]["name"]
    job_labels = {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }
    spec = obj.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if "selector" not in spec:
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {})
    template_meta = template.setdefault("metadata", {})
    template_meta.setdefault("labels", {}).update(job_labels)
    metadata_labels = obj["metadata"].setdefault("labels", {})
    for key in ("batch.kubernetes.io/controller-uid", "controller-uid"):
        metadata_labels.setdefault(key, uid)
    metadata_labels.setdefault("batch.kubernetes.io/job-name", name)
    metadata_labels.setdefault("job-name", name)
    obj["status"] = {}
