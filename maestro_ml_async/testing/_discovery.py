"""Discovery documents: ``/version``, ``/api``, ``/apis`` and resource lists."""

from __future__ import annotations

from typing import Any

from ._resources import ResourceType, group_versions

Obj = dict[str, Any]

_ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch"]
_ALL_VERBS += ["update", "watch"]


def version_info() -> Obj:
    """Return the ``/version`` document of a v1.32 server."""
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-maestro-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def core_versions(server_address: str) -> Obj:
    """Return the ``/api`` document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str) -> Obj:
    versions = [
        {"groupVersion": api_version, "version": api_version.split("/")[1]}
        for api_version in group_versions()
        if api_version.startswith(name + "/")
    ]
    return {
        "name": name,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def group_names() -> list[str]:
    """Return the served API groups other than core, in registry order."""
    names: list[str] = []
    for api_version in group_versions():
        if "/" in api_version:
            group = api_version.split("/")[0]
            if group not in names:
                names.append(group)
    return names


def group_list() -> Obj:
    """Return the ``/apis`` document."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(name) for name in group_names()],
    }


def api_group(name: str) -> Obj | None:
    """Return the ``/apis/<group>`` document, or ``None`` for an unknown group."""
    if name not in group_names():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def _entries(rtype: ResourceType) -> list[Obj]:
    main: Obj = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": _ALL_VERBS,
    }
    if rtype.short_names:
        main["shortNames"] = list(rtype.short_names)
    if rtype.custom or rtype.key in ("pods", "jobs.batch"):
        main["categories"] = ["all"]
    entries = [main]
    if rtype.has_status:
        entries.append(_subresource(rtype, "status", ["get", "patch", "update"]))
    if rtype.key == "pods":
        entries.append(_subresource(rtype, "log", ["get"]))
    return entries


def _subresource(rtype: ResourceType, name: str, verbs: list[str]) -> Obj:
    return {
        "name": f"{rtype.plural}/{name}",
        "singularName": "",
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": verbs,
    }


def resource_list(api_version: str) -> Obj | None:
    """Return the APIResourceList of a group version, or ``None`` if unknown."""
    rtypes = group_versions().get(api_version)
    if rtypes is None:
        return None
    resources = [entry for rtype in rtypes for entry in _entries(rtype)]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version,
        "resources": resources,
    }
