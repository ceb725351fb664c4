"""Server-side apply, managedFields and strategic merge patches on the fake server."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from maestro_ml_async.testing import FakeCluster
from maestro_ml_async.testing._patch import PatchError
from maestro_ml_async.testing._strategic import strategic_merge_patch

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


async def test_strategic_patch_sets_image(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", PODS, json=pod("p"))
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "main"}, {"name": "sidecar"}],
            "containers": [{"name": "main", "image": "busybox:2"}],
        }
    }

    status, body = await call(http, "PATCH", f"{PODS}/p", json=patch, headers=STRATEGIC)

    assert status == 200
    main, sidecar = body["spec"]["containers"]
    assert main["image"] == "busybox:2"
    assert main["command"] == ["sleep", "9"]
    assert len(main["env"]) == 2
    assert sidecar == {"name": "sidecar", "image": "envoy:1"}
    assert "$setElementOrder/containers" not in body["spec"]


async def test_strategic_patch_metadata_lists(http: aiohttp.ClientSession) -> None:
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u1"}
    created = dict(pod("p"))
    created["metadata"] = dict(created["metadata"], ownerReferences=[owner])
    await call(http, "POST", PODS, json=created)
    patch = {
        "metadata": {
            "finalizers": ["a/two", "a/one"],
            "$deleteFromPrimitiveList/finalizers": ["a/one"],
            "ownerReferences": [
                {"uid": "u1", "$patch": "delete"},
                {"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "u2"},
            ],
            "labels": {"$patch": "replace", "fresh": "1"},
        }
    }

    status, body = await call(http, "PATCH", f"{PODS}/p", json=patch, headers=STRATEGIC)

    assert status == 200
    meta = body["metadata"]
    assert meta["finalizers"] == ["a/two"]
    assert [ref["uid"] for ref in meta["ownerReferences"]] == ["u2"]
    assert meta["labels"] == {"fresh": "1"}


async def test_pod_spec_update_is_forbidden(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", PODS, json=pod("p"))
    patch = {"spec": {"containers": [{"name": "main", "env": [{"name": "C"}]}]}}

    status, body = await call(http, "PATCH", f"{PODS}/p", json=patch, headers=STRATEGIC)

    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["message"].startswith(
        'Pod "p" is invalid: spec: Forbidden: pod updates may not change fields'
    )
    (cause,) = body["details"]["causes"]
    assert cause["field"] == "spec"
    assert cause["reason"] == "FieldValueForbidden"


async def test_strategic_patch_missing_merge_key(http: aiohttp.ClientSession) -> None:
    await call(http, "POST", PODS, json=pod("p"))
    patch = {"spec": {"containers": [{"image": "no-name"}]}}

    status, body = await call(http, "PATCH", f"{PODS}/p", json=patch, headers=STRATEGIC)

    assert status == 422
    assert "does not contain declared merge key: name" in body["message"]


def test_strategic_merge_keyed_lists() -> None:
    spec = pod("p")["spec"]
    patch = {
        "containers": [
            {
                "name": "main",
                "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}],
            },
            {"name": "sidecar", "$patch": "delete"},
            {"name": "new", "image": "x"},
        ],
        "volumes": [
            {
                "name": "data",
                "configMap": {"name": "c"},
                "emptyDir": None,
                "$retainKeys": ["name", "configMap"],
            }
        ],
    }

    result = strategic_merge_patch(spec, patch)

    main, new = result["containers"]
    assert main["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    assert main["image"] == "busybox:1"
    assert new == {"name": "new", "image": "x"}
    assert result["volumes"] == [{"name": "data", "configMap": {"name": "c"}}]
    assert spec["containers"][1]["name"] == "sidecar", "the input is not modified"


def test_strategic_merge_replace_and_order() -> None:
    spec = pod("p")["spec"]

    replaced = strategic_merge_patch(
        spec, {"containers": [{"$patch": "replace"}, {"name": "only", "image": "x"}]}
    )
    reordered = strategic_merge_patch(
        spec, {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "main"}]}
    )
    atomic = strategic_merge_patch(
        spec, {"containers": [{"name": "main", "command": ["true"]}]}
    )

    assert replaced["containers"] == [{"name": "only", "image": "x"}]
    assert [item["name"] for item in reordered["containers"]] == ["sidecar", "main"]
    assert atomic["containers"][0]["command"] == ["true"], "scalar lists replace"
    with pytest.raises(PatchError):
        strategic_merge_patch(spec, {"$patch": "delete"})
    with pytest.raises(PatchError):
        strategic_merge_patch(spec, {"metadata": {"$patch": "bogus"}})


async def test_job_template_is_immutable(http: aiohttp.ClientSession) -> None:
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    template = {"spec": {"containers": [{"name": "c", "image": "x"}]}}
    body = {"metadata": {"name": "j"}, "spec": {"template": template}}
    status, _ = await call(http, "POST", jobs, json=body)
    assert status == 201
    changed = {
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "y"}]}}}
    }

    status, response = await call(
        http, "PATCH", f"{jobs}/j", json=changed, headers=MERGE
    )

    assert status == 422
    (cause,) = response["details"]["causes"]
    assert cause["field"] == "spec.template"
    assert response["message"].startswith('Job.batch "j" is invalid: spec.template:')
    status, _ = await call(
        http, "PATCH", f"{jobs}/j", json={"spec": {"suspend": True}}, headers=MERGE
    )
    assert status == 200


async def test_immutable_config_map_data(http: aiohttp.ClientSession) -> None:
    body = dict(config_map("c", {"a": "1"}), immutable=True)
    status, _ = await call(http, "POST", CM, json=body)
    assert status == 201

    status, response = await call(
        http, "PATCH", f"{CM}/c", json={"data": {"a": "2"}}, headers=MERGE
    )

    assert status == 422
    assert [cause["field"] for cause in response["details"]["causes"]] == ["data"]
    status, relabelled = await call(
        http,
        "PATCH",
        f"{CM}/c",
        json={"metadata": {"labels": {"x": "1"}}},
        headers=MERGE,
    )
    assert status == 200
    assert relabelled["data"] == {"a": "1"}


async def test_deleting_object_gets_no_finalizers(
    http: aiohttp.ClientSession,
) -> None:
    body = {"metadata": {"name": "f", "finalizers": ["a/one"]}, "spec": {}}
    status, _ = await call(http, "POST", PJ, json=body)
    assert status == 201
    status, deleting = await call(http, "DELETE", f"{PJ}/f")
    assert status == 200
    assert deleting["metadata"]["deletionTimestamp"]
    added = {"metadata": {"finalizers": ["a/one", "a/two"]}}

    status, response = await call(http, "PATCH", f"{PJ}/f", json=added, headers=MERGE)

    assert status == 422
    (cause,) = response["details"]["causes"]
    assert cause["field"] == "metadata.finalizers"
    assert cause["message"] == (
        "Forbidden: no new finalizers can be added if the object is being deleted, "
        'found new finalizers []string{"a/two"}'
    )
    removed = {"metadata": {"finalizers": None}}
    status, _ = await call(http, "PATCH", f"{PJ}/f", json=removed, headers=MERGE)
    assert status == 200
    status, _ = await call(http, "GET", f"{PJ}/f")
    assert status == 404


async def test_foreground_delete_returns_object(http: aiohttp.ClientSession) -> None:
    status, _ = await call(http, "POST", PJ, json={"metadata": {"name": "g"}})
    assert status == 201

    status, body = await call(
        http, "DELETE", f"{PJ}/g", json={"propagationPolicy": "Foreground"}
    )

    assert status == 200
    assert body["kind"] == "PyTorchJob"
    assert body["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert body["metadata"]["deletionTimestamp"]
    status, _ = await call(http, "GET", f"{PJ}/g")
    assert status == 404, "without dependents the object goes at once"


async def test_dry_run_writes_store_nothing(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    dry = {"dryRun": "All"}
    status, created = await call(http, "POST", CM, json=config_map("d", {}), params=dry)
    assert status == 201
    assert "resourceVersion" not in created["metadata"]
    assert created["metadata"]["managedFields"][0]["manager"] == "Python"
    status, _ = await call(http, "GET", f"{CM}/d")
    assert status == 404
    await call(http, "POST", CM, json=config_map("c", {"a": "1"}))
    version = bare_cluster.store.resource_version

    status, patched = await call(
        http, "PATCH", f"{CM}/c", json={"data": {"a": "2"}}, headers=MERGE, params=dry
    )
    assert status == 200
    assert patched["data"] == {"a": "2"}
    data = json.dumps(config_map("c", {"a": "3"}))
    params = {"fieldManager": "tool", "force": "true", **dry}
    status, applied = await call(
        http, "PATCH", f"{CM}/c", data=data, headers=APPLY, params=params
    )
    assert status == 200
    assert applied["data"] == {"a": "3"}
    status, duplicate = await call(
        http, "POST", CM, json=config_map("c", {}), params=dry
    )

    assert status == 409
    assert duplicate["reason"] == "AlreadyExists"
    assert bare_cluster.store.resource_version == version
    _, stored = await call(http, "GET", f"{CM}/c")
    assert stored["data"] == {"a": "1"}
