"""OpenAPI v3 documents, with only what kubectl needs to validate input.

kubectl 1.27 and newer validate ``apply`` and ``create`` input on the server
(``fieldValidation=Strict``) when the OpenAPI v3 document of a group version
lists that query parameter on the kind's PATCH operation. Without a document it
downloads the OpenAPI v2 schema instead and, when that fails, stops with
"failed to download openapi" unless ``--validate=false`` is given.

The documents describe no schemas, so kubectl never validates fields itself and
the fake still accepts any field. The PATCH request bodies do not list
strategic merge patch, so ``kubectl apply`` builds its patches from its
compiled-in types, as it does for a server without OpenAPI.
"""

from __future__ import annotations

from typing import Any

from ._resources import ResourceType, group_versions

Obj = dict[str, Any]

_QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_MEDIA_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


def _document_path(api_version: str) -> str:
    return "api/v1" if api_version == "v1" else f"apis/{api_version}"


def root_document() -> Obj:
    """Return the ``/openapi/v3`` index of every served group version."""
    return {
        "paths": {
            _document_path(api_version): {
                "serverRelativeURL": f"/openapi/v3/{_document_path(api_version)}"
            }
            for api_version in group_versions()
        }
    }


def _item_path(rtype: ResourceType) -> str:
    prefix = f"/apis/{rtype.api_version}" if rtype.group else "/api/v1"
    if rtype.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{rtype.plural}/{{name}}"
    return f"{prefix}/{rtype.plural}/{{name}}"


def _patch_operation(rtype: ResourceType) -> Obj:
    parameters = [
        {"name": name, "in": "query", "schema": {"type": "string"}}
        for name in _QUERY_PARAMETERS
    ]
    content = {media: {"schema": {"type": "object"}} for media in _PATCH_MEDIA_TYPES}
    return {
        "operationId": f"patch{rtype.kind}",
        "parameters": parameters,
        "requestBody": {"content": content, "required": True},
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {
            "group": rtype.group,
            "version": rtype.version,
            "kind": rtype.kind,
        },
    }


def group_version_document(path: str) -> Obj | None:
    """Return the document at ``/openapi/v3/<path>``, or ``None`` if unknown.

    Args:
        path: ``api/v1`` or ``apis/<group>/<version>``.
    """
    for api_version, rtypes in group_versions().items():
        if _document_path(api_version) != path:
            continue
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": {
                _item_path(rtype): {"patch": _patch_operation(rtype)}
                for rtype in rtypes
            },
            "components": {},
        }
    return None
