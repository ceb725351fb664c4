"""Server-side apply, managedFields and strategic merge patches on the fake server."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

Obj = dict[str, Any]
PJ = "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs"
CM = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
APPLY = {"Content-Type": "application/apply-patch+yaml"}
MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}


async def call(
    http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Obj]:
    async with http.request(method, path, **kwargs) as response:
        return response.status, await response.json()


async def apply(
    http: aiohttp.ClientSession,
    path: str,
    body: Obj,
    manager: str,
    *,
    force: bool = False,
) -> tuple[int, Obj]:
    params = {"fieldManager": manager}
    if force:
        params["force"] = "true"
    data = json.dumps(body)
    return await call(http, "PATCH", path, data=data, headers=APPLY, params=params)


def config_map(name: str, data: dict[str, str] | None, **labels: str) -> Obj:
    """Return a ConfigMap manifest, without a data field when ``data`` is None."""
    metadata: Obj = {"name": name}
    if labels:
        metadata["labels"] = labels
    body: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data is not None:
        body["data"] = data
    return body


def entries(obj: Obj) -> dict[tuple[str, str], Obj]:
    """Return the managedFields entries keyed by (manager, operation)."""
    managed = obj["metadata"].get("managedFields", [])
    return {(entry["manager"], entry["operation"]): entry for entry in managed}


def pod(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "finalizers": ["a/one"]},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1",
                    "command": ["sleep", "9"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                },
                {"name": "sidecar", "image": "envoy:1"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }


async def test_apply_create_records_owner(http: aiohttp.ClientSession) -> None:
    status, body = await apply(
        http, f"{CM}/c", config_map("c", {"x": "1"}, team="ml"), "deployer"
    )

    assert status == 201
    (entry,) = body["metadata"]["managedFields"]
    assert entry["manager"] == "deployer"
    assert entry["operation"] == "Apply"
    assert entry["apiVersion"] == "v1"
    assert entry["fieldsType"] == "FieldsV1"
    assert entry["time"].endswith("Z")
    assert "subresource" not in entry
    assert entry["fieldsV1"] == {
        "f:data": {"f:x": {}},
        "f:metadata": {"f:labels": {"f:team": {}}},
    }


async def test_update_writes_record_owner(http: aiohttp.ClientSession) -> None:
    status, created = await call(http, "POST", CM, json=config_map("c", {"x": "1"}))
    assert status == 201
    assert entries(created).keys() == {("Python", "Update")}, "User-Agent prefix"

    status, patched = await call(
        http,
        "PATCH",
        f"{CM}/c",
        json={"data": {"y": "2"}},
        headers=MERGE,
        params={"fieldManager": "editor"},
    )

    assert status == 200
    owners = entries(patched)
    assert owners[("Python", "Update")]["fieldsV1"] == {"f:data": {"f:x": {}}}
    assert owners[("editor", "Update")]["fieldsV1"] == {"f:data": {"f:y": {}}}


async def test_apply_conflict_status_body(http: aiohttp.ClientSession) -> None:
    status, _ = await apply(http, f"{CM}/c", config_map("c", {"x": "1"}), "first")
    assert status == 201
    await call(
        http,
        "PATCH",
        f"{CM}/c",
        json={"data": {"x": "9"}},
        headers=MERGE,
        params={"fieldManager": "kubectl-patch"},
    )

    status, body = await apply(http, f"{CM}/c", config_map("c", {"x": "1"}), "first")

    assert status == 409
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": (
            'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: '
            ".data.x"
        ),
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "kubectl-patch" using v1',
                    "field": ".data.x",
                }
            ]
        },
        "code": 409,
    }


async def test_apply_conflicts_listed_per_manager(http: aiohttp.ClientSession) -> None:
    await apply(http, f"{CM}/c", config_map("c", {"a": "1", "b": "1"}), "one")
    status, body = await apply(
        http, f"{CM}/c", config_map("c", {"a": "2", "b": "2"}), "two"
    )

    assert status == 409
    assert body["message"] == (
        'Apply failed with 2 conflicts: conflicts with "one" using v1:\n'
        "- .data.a\n- .data.b"
    )
    assert [cause["field"] for cause in body["details"]["causes"]] == [
        ".data.a",
        ".data.b",
    ]


async def test_force_apply_takes_ownership(http: aiohttp.ClientSession) -> None:
    await apply(http, f"{CM}/c", config_map("c", {"a": "1", "b": "1"}), "one")

    status, body = await apply(
        http, f"{CM}/c", config_map("c", {"a": "2"}), "two", force=True
    )

    assert status == 200
    assert body["data"] == {"a": "2", "b": "1"}
    owners = entries(body)
    assert owners[("one", "Apply")]["fieldsV1"] == {"f:data": {"f:b": {}}}
    assert owners[("two", "Apply")]["fieldsV1"] == {"f:data": {"f:a": {}}}


async def test_equal_values_share_ownership(http: aiohttp.ClientSession) -> None:
    await apply(http, f"{CM}/c", config_map("c", {"a": "1"}), "one")
    status, body = await apply(http, f"{CM}/c", config_map("c", {"a": "1"}), "two")
    assert status == 200
    assert {key[0] for key in entries(body)} == {"one", "two"}

    status, body = await apply(http, f"{CM}/c", config_map("c", None), "one")

    assert status == 200
    assert body["data"] == {"a": "1"}, "the field stays while 'two' owns it"
    assert {key[0] for key in entries(body)} == {"two"}


async def test_apply_removes_dropped_fields(http: aiohttp.ClientSession) -> None:
    first = config_map("c", {"a": "1", "b": "2"}, keep="1", drop="1")
    await apply(http, f"{CM}/c", first, "one")
    await call(
        http,
        "PATCH",
        f"{CM}/c",
        json={"metadata": {"labels": {"other": "1"}}},
        headers=MERGE,
        params={"fieldManager": "labeler"},
    )

    status, body = await apply(
        http, f"{CM}/c", config_map("c", {"a": "1"}, keep="1"), "one"
    )

    assert status == 200
    assert body["data"] == {"a": "1"}
    assert body["metadata"]["labels"] == {"keep": "1", "other": "1"}
    status, body = await apply(http, f"{CM}/c", config_map("c", None), "one")
    assert status == 200
    assert "data" not in body
    assert body["metadata"]["labels"] == {"other": "1"}


async def test_reapply_keeps_resource_version(http: aiohttp.ClientSession) -> None:
    manifest = config_map("c", {"a": "1"}, team="ml")
    _, first = await apply(http, f"{CM}/c", manifest, "one")

    status, second = await apply(http, f"{CM}/c", manifest, "one")

    assert status == 200
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert second["metadata"]["managedFields"] == first["metadata"]["managedFields"]


async def test_apply_merges_containers_by_name(http: aiohttp.ClientSession) -> None:
    status, _ = await call(http, "POST", PODS, json=pod("p"))
    assert status == 201
    config = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "busybox:2"}]},
    }

    status, body = await apply(http, f"{PODS}/p", config, "imager", force=True)

    assert status == 200
    containers = {item["name"]: item for item in body["spec"]["containers"]}
    assert containers.keys() == {"main", "sidecar"}
    assert containers["main"]["image"] == "busybox:2"
    assert containers["main"]["command"] == ["sleep", "9"]
    fields = entries(body)[("imager", "Apply")]["fieldsV1"]
    item = fields["f:spec"]["f:containers"]['k:{"name":"main"}']
    assert item == {".": {}, "f:image": {}, "f:name": {}}


async def test_status_apply_is_a_subresource(http: aiohttp.ClientSession) -> None:
    job = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "j"},
        "spec": {"runPolicy": {"suspend": False}},
        "status": {"ignored": True},
    }
    status, created = await apply(http, f"{PJ}/j", job, "owner")
    assert status == 201
    assert "status" not in created
    status_config = {"metadata": {"name": "j"}, "status": {"conditions": []}}

    status, body = await apply(http, f"{PJ}/j/status", status_config, "operator")

    assert status == 200
    assert body["status"] == {"conditions": []}
    assert body["spec"] == {"runPolicy": {"suspend": False}}
    entry = entries(body)[("operator", "Apply")]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:conditions": {}}}
    assert "f:status" not in entries(body)[("owner", "Apply")]["fieldsV1"]


async def test_apply_rejects_managed_fields(http: aiohttp.ClientSession) -> None:
    body = config_map("c", {"a": "1"})
    body["metadata"]["managedFields"] = [{"manager": "x"}]

    status, response = await apply(http, f"{CM}/c", body, "one")

    assert status == 400
    assert response["message"] == "metadata.managedFields must be nil"


async def test_put_keeps_managed_fields(http: aiohttp.ClientSession) -> None:
    _, created = await apply(http, f"{CM}/c", config_map("c", {"a": "1"}), "one")
    body = config_map("c", {"a": "1", "b": "2"})
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]

    status, replaced = await call(
        http, "PUT", f"{CM}/c", json=body, params={"fieldManager": "writer"}
    )

    assert status == 200
    owners = entries(replaced)
    assert owners[("one", "Apply")]["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert owners[("writer", "Update")]["fieldsV1"] == {"f:data": {"f:b": {}}}


async def test_long_field_manager_gets_400(http: aiohttp.ClientSession) -> None:
    status, body = await apply(http, f"{CM}/c", config_map("c", {}), "m" * 129)
    assert status == 400
    assert "128 characters" in body["message"]


async def test_strategic_patch_merges_by_key(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", PODS, json=pod("p"))
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "main"}, {"name": "sidecar"}],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:2",
                    "env": [
                        {"name": "B", "$patch": "delete"},
                        {"name": "C", "value": "3"},
                    ],
                }
            ],
        }
    }

    status, body = await call(http, "PATCH", f"{PODS}/p", json=patch, headers=STRATEGIC)

    assert status == 200
    main, sidecar = body["spec"]["containers"]
    assert main["image"] == "busybox:2"
    assert main["command"] == ["sleep", "9"]
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    assert sidecar == {"name": "sidecar", "image": "envoy:1"}
    assert "$setElementOrder/containers" not in body["spec"]


async def test_strategic_patch_directives(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", PODS, json=pod("p"))
    patch = {
        "metadata": {
            "finalizers": ["a/two", "a/one"],
            "$deleteFromPrimitiveList/finalizers": ["a/one"],
        },
        "spec": {
            "containers": [{"name": "sidecar", "$patch": "delete"}],
            "volumes": [
                {
                    "name": "data",
                    "configMap": {"name": "c"},
                    "$retainKeys": ["name", "configMap"],
                }
            ],
            "$setElementOrder/containers": [{"name": "main"}],
        },
    }

    status, body = await call(http, "PATCH", f"{PODS}/p", json=patch, headers=STRATEGIC)

    assert status == 200
    assert body["metadata"]["finalizers"] == ["a/two"]
    assert [item["name"] for item in body["spec"]["containers"]] == ["main"]
    assert body["spec"]["volumes"] == [{"name": "data", "configMap": {"name": "c"}}]


async def test_strategic_patch_replace_directive(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", PODS, json=pod("p"))
    patch = {
        "spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]},
        "metadata": {"labels": {"$patch": "replace", "fresh": "1"}},
    }

    status, body = await call(http, "PATCH", f"{PODS}/p", json=patch, headers=STRATEGIC)

    assert status == 200
    assert body["spec"]["containers"] == [{"name": "only", "image": "x"}]
    assert body["metadata"]["labels"] == {"fresh": "1"}


async def test_strategic_patch_missing_merge_key(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", PODS, json=pod("p"))
    patch = {"spec": {"containers": [{"image": "no-name"}]}}

    status, body = await call(http, "PATCH", f"{PODS}/p", json=patch, headers=STRATEGIC)

    assert status == 422
    assert "does not contain declared merge key: name" in body["message"]
