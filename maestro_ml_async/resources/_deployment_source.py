"""Source of a deployment's model: the registry version and its storage URI.

The version is resolved through MLflow's REST API (by number, alias or stage),
then its download URI (``model-versions/get-download-uri``) is rewritten by the
configured prefix map into a URI that KServe's storage initializer can read.
KServe does not resolve ``runs:/`` or ``models:/`` URIs itself, so those are
first followed through the REST API to the artifact location they name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .._exceptions import (
    DeploymentException,
    InvalidParameterException,
    ModelVersionNotFoundException,
    NotFoundException,
    RunNotFoundException,
    ValidationException,
)
from .._transport import MlflowTransport
from .._validation import check_alias, check_name, check_stage, check_version
from ._kserve import ModelSpec

__all__ = [
    "KSERVE_SCHEMES",
    "VersionSelector",
    "check_version_selector",
    "map_storage_uri",
    "redact_uri",
    "require_version_selector",
    "resolve_model",
    "storage_uri_for_format",
]

# Schemes that KServe's storage initializer downloads from (KServe 0.15).
KSERVE_SCHEMES = ("s3", "gs", "pvc", "https", "hdfs", "oci", "hf")
_MAX_URI_HOPS = 4
_EXAMPLE_MAP = '{"mlflow-artifacts:/": "s3://<bucket>/<artifact root>/"}'


class VersionSelector:
    """Exactly one way of picking a registry version: number, alias or stage."""

    def __init__(
        self,
        version: str | None = None,
        alias: str | None = None,
        stage: str | None = None,
    ) -> None:
        self.version = version
        self.alias = alias
        self.stage = stage

    def describe(self) -> str:
        """Return the selector as a phrase for messages ("alias 'champion'")."""
        if self.version is not None:
            return f"version {self.version}"
        if self.alias is not None:
            return f"alias {self.alias!r}"
        return f"stage {self.stage!r}"


def check_version_selector(
    model_version: object, alias: object, stage: object, *, required: bool = True
) -> VersionSelector | None:
    """Check that exactly one of version, alias and stage is given.

    With ``required=False`` none at all is allowed too, and returns None.
    """
    given = [v for v in (model_version, alias, stage) if v is not None]
    if not given:
        if required:
            raise ValidationException(
                "pass exactly one of model_version, alias and stage to pick the "
                "version to deploy"
            )
        return None
    if len(given) > 1:
        raise ValidationException(
            "model_version, alias and stage are exclusive; pass only one of them"
        )
    if model_version is not None:
        return VersionSelector(version=check_version(model_version))
    if alias is not None:
        return VersionSelector(alias=check_alias(alias))
    return VersionSelector(stage=check_stage(stage))


def require_version_selector(
    model_version: object, alias: object, stage: object
) -> VersionSelector:
    """Check that exactly one of version, alias and stage is given; return it."""
    selector = check_version_selector(model_version, alias, stage)
    if selector is None:  # pragma: no cover - required=True raises instead
        raise ValidationException("pass one of model_version, alias and stage")
    return selector


async def resolve_model(
    transport: MlflowTransport,
    model_name: str,
    selector: VersionSelector,
    storage_uri_map: Mapping[str, str],
    *,
    deployment_name: str | None = None,
) -> ModelSpec:
    """Resolve a registry version and the storage URI that KServe reads.

    Raises:
        ModelVersionNotFoundException: The model, version, alias or stage does
            not exist.
        DeploymentException: The version is not READY, or its artifacts are at
            a location that KServe cannot read.
    """
    check_name(model_name)
    version = await _fetch_version(transport, model_name, selector)
    number = str(version.get("version") or "")
    status = version.get("status") or "READY"
    if status != "READY":
        raise DeploymentException(
            f"model {model_name!r} version {number} is {status}, not READY; "
            "wait for its registration to finish or pick another version",
            deployment_name=deployment_name,
        )
    body = await transport.call(
        "GET",
        "model-versions/get-download-uri",
        params={"name": model_name, "version": number},
        registry=True,
        not_found=ModelVersionNotFoundException,
    )
    download_uri = str(body.get("artifact_uri") or version.get("source") or "")
    what = f"model {model_name!r} version {number}"
    if not download_uri.strip():
        # MLflow's JSON leaves out empty strings, so both fields may be absent.
        raise DeploymentException(
            f"cannot deploy {what}: the registry returned no artifact location "
            "for it (get-download-uri and the version's source are empty); "
            "register the version again with a source",
            deployment_name=deployment_name,
        )
    artifact_uri = await _follow_mlflow_uri(
        transport, download_uri, what=what, deployment_name=deployment_name
    )
    storage_uri = map_storage_uri(
        artifact_uri, storage_uri_map, what=what, deployment_name=deployment_name
    )
    return ModelSpec(model_name, number, storage_uri, artifact_uri)


async def _follow_mlflow_uri(
    transport: MlflowTransport, uri: str, *, what: str, deployment_name: str | None
) -> str:
    """Resolve ``runs:/`` and ``models:/`` URIs to the artifact location they name.

    MLflow 3.17 returns a version's ``runs:/<run id>/<path>`` source unchanged
    from get-download-uri, and KServe cannot read such a URI.

    Raises:
        DeploymentException: The run or model that the URI names is missing,
            or the URIs refer to each other more than `_MAX_URI_HOPS` times.
    """
    current = uri
    for _ in range(_MAX_URI_HOPS):
        scheme = urlsplit(current).scheme.lower()
        try:
            if scheme == "runs":
                current = await _run_artifact_uri(transport, current)
            elif scheme == "models":
                current = await _model_artifact_uri(transport, current)
            else:
                return current
        except (NotFoundException, InvalidParameterException) as exc:
            raise DeploymentException(
                f"cannot deploy {what}: its artifact location {current!r} names "
                f"an MLflow object that was not found ({exc}); register the "
                "version again from an existing run or model",
                deployment_name=deployment_name,
            ) from exc
    raise DeploymentException(
        f"cannot deploy {what}: its artifact location {uri!r} still refers to "
        f"another MLflow URI after {_MAX_URI_HOPS} steps ({current!r})",
        deployment_name=deployment_name,
    )


def _uri_body(uri: str) -> str:
    # Accept both "runs:/<id>/<path>" and "runs://<id>/<path>".
    return uri.split(":", 1)[1].lstrip("/")


async def _run_artifact_uri(transport: MlflowTransport, uri: str) -> str:
    run_id, _, path = _uri_body(uri).partition("/")
    if not run_id:
        raise InvalidParameterException(f"{uri!r} names no run id")
    body = await transport.call(
        "GET", "runs/get", params={"run_id": run_id}, not_found=RunNotFoundException
    )
    root = str(_dig(body, "run", "info", "artifact_uri") or "")
    if not root:
        raise InvalidParameterException(f"run {run_id!r} has no artifact_uri")
    path = path.strip("/")
    return f"{root.rstrip('/')}/{path}" if path else root


async def _model_artifact_uri(transport: MlflowTransport, uri: str) -> str:
    """Resolve ``models:/<name>/<version|stage>``, ``models:/<name>@<alias>``
    and ``models:/<logged model id>`` (MLflow 3)."""
    body_text = _uri_body(uri).rstrip("/")
    name, slash, rest = body_text.rpartition("/")
    if not slash:
        name, at, alias = body_text.rpartition("@")
        if not at:
            return await _logged_model_uri(transport, body_text)
        selector = VersionSelector(alias=alias)
    elif rest.isdigit():
        selector = VersionSelector(version=rest)
    else:
        selector = VersionSelector(stage=rest)
    version = await _fetch_version(transport, name, selector)
    body = await transport.call(
        "GET",
        "model-versions/get-download-uri",
        params={"name": name, "version": str(version.get("version") or "")},
        registry=True,
        not_found=ModelVersionNotFoundException,
    )
    return str(body.get("artifact_uri") or version.get("source") or "")


async def _logged_model_uri(transport: MlflowTransport, model_id: str) -> str:
    body = await transport.call(
        "GET", f"logged-models/{quote(model_id, safe='')}", not_found=NotFoundException
    )
    location = str(_dig(body, "model", "info", "artifact_uri") or "")
    if not location:
        raise InvalidParameterException(
            f"logged model {model_id!r} has no artifact_uri"
        )
    return location


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


async def _fetch_version(
    transport: MlflowTransport, model_name: str, selector: VersionSelector
) -> dict[str, Any]:
    not_found = ModelVersionNotFoundException
    if selector.version is not None:
        body = await transport.call(
            "GET",
            "model-versions/get",
            params={"name": model_name, "version": selector.version},
            registry=True,
            not_found=not_found,
        )
        return dict(body.get("model_version") or {})
    if selector.alias is not None:
        try:
            body = await transport.call(
                "GET",
                "registered-models/alias",
                params={"name": model_name, "alias": selector.alias},
                registry=True,
                not_found=not_found,
            )
        except InvalidParameterException as exc:
            # MLflow reports a missing alias as INVALID_PARAMETER_VALUE, not 404.
            raise not_found(
                f"model {model_name!r} has no alias {selector.alias!r}",
                status_code=exc.status_code,
                error_code="RESOURCE_DOES_NOT_EXIST",
                method=exc.method,
                path=exc.path,
            ) from exc
        return dict(body.get("model_version") or {})
    body = await transport.call(
        "POST",
        "registered-models/get-latest-versions",
        json={"name": model_name, "stages": [selector.stage]},
        registry=True,
        not_found=not_found,
    )
    versions = body.get("model_versions") or []
    if not versions:
        raise not_found(
            f"model {model_name!r} has no version in stage {selector.stage!r}",
            error_code="RESOURCE_DOES_NOT_EXIST",
        )
    return dict(versions[0])


def map_storage_uri(
    artifact_uri: str,
    storage_uri_map: Mapping[str, str],
    *,
    what: str = "the model",
    deployment_name: str | None = None,
) -> str:
    """Rewrite an artifact URI into one that KServe can read.

    The longest prefix of `storage_uri_map` that matches at a path boundary is
    replaced by its value, joined with exactly one ``/``: ``mlflow-artifacts:/1``
    matches ``mlflow-artifacts:/1/m`` but not ``mlflow-artifacts:/10/m``. An
    ``mlflow-artifacts://<host>/<path>`` URI also matches the prefixes of
    ``mlflow-artifacts:/<path>``. Schemes of keys and URIs match in any
    case. A target's query string (a signed URL) stays after the joined path.
    The scheme of the result is lower-cased,
    because KServe's storage initializer picks the downloader with a
    case-sensitive ``uri.startswith("s3://")``. The result must use one of
    `KSERVE_SCHEMES`, in the form ``<scheme>://<authority>/<path>`` with the
    bucket, claim or host that the scheme needs.

    Raises:
        DeploymentException: The URI is a local path, a registry or tracking
            URI without a mapping, uses a scheme KServe does not read, or
            lacks its bucket, claim, host or the ``//``.
        ValidationException: Two keys of `storage_uri_map` differ only in
            the case of their scheme and have different targets.
    """
    mapped = _apply_storage_map(artifact_uri, storage_uri_map)
    scheme = urlsplit(mapped).scheme.lower()
    if scheme in KSERVE_SCHEMES:
        missing = _missing_location(mapped, scheme)
        if missing is None:
            return scheme + mapped[len(scheme) :]
        raise DeploymentException(
            _incomplete_message(what, artifact_uri, mapped, scheme, missing),
            deployment_name=deployment_name,
        )
    raise DeploymentException(
        _unreadable_message(what, artifact_uri, mapped, scheme),
        deployment_name=deployment_name,
    )


def _apply_storage_map(uri: str, storage_uri_map: Mapping[str, str]) -> str:
    # URI schemes are case-insensitive, so map keys and
    # URIs are compared with their schemes in lower case.
    targets: dict[str, str] = {}
    for key, target in storage_uri_map.items():
        if not key:
            continue
        prefix = _lower_scheme(key)
        if targets.get(prefix, target) != target:
            raise ValidationException(
                f"storage_uri_map has two keys for the prefix {prefix!r} with "
                "different targets; URI schemes are case-insensitive, so keep "
                "one of them"
            )
        targets[prefix] = target
    prefixes = sorted(targets, key=len, reverse=True)
    for candidate, shortest in _map_candidates(_lower_scheme(uri)):
        for prefix in prefixes:
            if len(prefix) >= shortest and _matches_prefix(candidate, prefix):
                rest = candidate[len(prefix) :]
                return _join_uri(targets[prefix], rest)
    return uri


def _lower_scheme(uri: str) -> str:
    scheme = urlsplit(uri).scheme
    return scheme.lower() + uri[len(scheme) :] if scheme else uri


def _map_candidates(uri: str) -> list[tuple[str, int]]:
    """Return the forms of `uri` to match, each with its shortest usable prefix.

    MLflow resolves ``mlflow-artifacts://<host>/<path>`` to ``<path>`` under the
    artifact root of the server at ``<host>``, the same location that
    ``mlflow-artifacts:/<path>`` names on the tracking server. Such a URI
    matches a prefix that names its host, or else a prefix of the form
    without the host. So ``mlflow-artifacts:/`` never maps the host name into
    the path.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != "mlflow-artifacts" or not parts.netloc:
        return [(uri, 0)]
    authority = uri.index(parts.netloc) + len(parts.netloc)
    bare = "mlflow-artifacts:/" + parts.path.lstrip("/")
    return [(uri, authority), (bare, 0)]


def _matches_prefix(uri: str, prefix: str) -> bool:
    if not uri.startswith(prefix):
        return False
    if len(uri) == len(prefix) or prefix.endswith(("/", ":")):
        return True
    return uri[len(prefix)] == "/"


def _join_uri(target: str, rest: str) -> str:
    """Append path `rest` to `target`, before the target's query or fragment.

    A target such as ``https://host/container?<signature>`` keeps its query
    at the end, where a signed URL needs it.
    """
    if not rest:
        return target
    end = min((i for i in (target.find("?"), target.find("#")) if i >= 0), default=-1)
    base, suffix = (target[:end], target[end:]) if end >= 0 else (target, "")
    head = base if base.endswith("/") else base + "/"
    return head + rest.lstrip("/") + suffix


def storage_uri_for_format(model: ModelSpec, model_format: str | None) -> ModelSpec:
    """Return `model` with the storage URI that its format's server can load.

    An MLflow model is a directory that contains an ``MLmodel`` file, so its
    ``s3://`` URI gets a trailing slash. S3 lists keys by string prefix, and
    KServe's storage initializer downloads every key under the URI's path:
    ``s3://b/models/v1`` also fetches ``s3://b/models/v10/...`` and
    ``s3://b/models/v1-old/...`` into the same model directory. Some KServe
    releases (reported for 0.11.1 and 0.14) also moved the nested files of a
    URI without the slash to the top level, where MLflow cannot find them.
    Other formats keep their URI, because it may name a single model file.
    """
    uri = model.storage_uri
    is_mlflow = (model_format or "").lower() == "mlflow"
    if not is_mlflow or urlsplit(uri).scheme != "s3" or uri.endswith("/"):
        return model
    return dataclasses.replace(model, storage_uri=uri + "/")


def redact_uri(uri: str) -> str:
    """Return `uri` without user info and query, which may carry credentials.

    Signed URLs (an S3 presigned URL, an Azure SAS token) put the secret in the
    query string, and ``https://user:token@host`` in the user info.
    """
    parts = urlsplit(uri)
    if "@" not in parts.netloc and not parts.query and not parts.fragment:
        return uri
    netloc = parts.netloc.rpartition("@")[2]
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# The part of a URI that KServe's storage initializer reads from the
# authority (after "<scheme>://") and that must not be empty.
_AUTHORITY_PARTS = {
    "s3": "bucket",
    "gs": "bucket",
    "pvc": "PersistentVolumeClaim name",
    "https": "host",
    "oci": "registry host",
    "hf": "repository owner",
}


def _missing_location(uri: str, scheme: str) -> str | None:
    """Return what `uri` lacks for KServe to read it, or None when complete.

    KServe picks the downloader with ``uri.startswith("<scheme>://")``, so
    ``gs:/bucket/m`` is not read as a bucket, and ``s3:///m`` has no bucket.
    """
    parts = urlsplit(uri)
    if not uri[len(scheme) :].startswith("://"):
        return f"the '//' after '{scheme}:' (the form is {_uri_form(scheme)})"
    if scheme in _AUTHORITY_PARTS and not parts.netloc:
        part = _AUTHORITY_PARTS[scheme]
        return f"the {part} (the form is {_uri_form(scheme)})"
    if not (parts.netloc or parts.path.strip("/")):
        return f"a path (the form is {_uri_form(scheme)})"
    return None


def _uri_form(scheme: str) -> str:
    part = _AUTHORITY_PARTS.get(scheme, "path").replace(" ", "-").lower()
    return f"{scheme}://<{part}>/<path>"


def _incomplete_message(
    what: str, original: str, mapped: str, scheme: str, missing: str
) -> str:
    original, mapped = redact_uri(original), redact_uri(mapped)
    shown = (
        repr(original) if mapped == original else f"{original!r} (mapped to {mapped!r})"
    )
    return (
        f"cannot deploy {what}: its storage URI {shown} is missing {missing}. "
        f"Fix the {scheme}:// target in storage_uri_map, or register the model "
        "from a complete URI."
    )


def _unreadable_message(what: str, original: str, mapped: str, scheme: str) -> str:
    original, mapped = redact_uri(original), redact_uri(mapped)
    shown = (
        repr(original) if mapped == original else f"{original!r} (mapped to {mapped!r})"
    )
    fix = (
        "set storage_uri_map (environment variable MAESTRO_ML_STORAGE_URI_MAP, "
        f"JSON) to rewrite its prefix, for example {_EXAMPLE_MAP}"
    )
    if scheme in ("", "file") or len(scheme) == 1:
        problem = "is a local path, which the model server's pod cannot read"
        fix += ", or register the model from a bucket or a volume"
    elif scheme == "mlflow-artifacts":
        problem = (
            "is served by the MLflow artifact proxy, which KServe cannot download "
            "from; map it to the bucket or volume behind the proxy"
        )
    elif scheme in ("models", "runs"):
        problem = "is an MLflow URI, which KServe does not resolve"
    else:
        problem = f"uses the scheme {scheme!r}, which KServe does not read"
    readable = ", ".join(f"{s}://" for s in KSERVE_SCHEMES)
    return (
        f"cannot deploy {what}: its artifact location {shown} {problem}. KServe "
        f"reads {readable}. To fix it, {fix}."
    )
