"""The fake API server's REST verbs, checked over HTTP against real-server bodies."""

from __future__ import annotations

import gzip
import json
from typing import Any

import aiohttp
import pytest

from maestro_ml_async.testing import FakeCluster

Obj = dict[str, Any]
PJ = "/apis/kubeflow.org/v1/namespaces/default/pytorchjobs"
PODS = "/api/v1/namespaces/default/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def job(name: str, **labels: str) -> Obj:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "labels": labels},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1}}},
    }


async def create(http: aiohttp.ClientSession, path: str, body: Obj) -> Obj:
    async with http.post(path, json=body) as response:
        assert response.status == 201, await response.text()
        created: Obj = await response.json()
        return created


async def call(
    http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any
) -> tuple[int, Obj]:
    async with http.request(method, path, **kwargs) as response:
        return response.status, await response.json()


async def test_discovery_documents(http: aiohttp.ClientSession) -> None:
    status, version = await call(http, "GET", "/version")
    assert status == 200
    assert version["major"] == "1"
    _, groups = await call(http, "GET", "/apis")
    names = [group["name"] for group in groups["groups"]]
    assert names == [
        "kubeflow.org",
        "trainer.kubeflow.org",
        "serving.kserve.io",
        "batch",
    ]
    _, resources = await call(http, "GET", "/apis/kubeflow.org/v1")
    by_name = {entry["name"]: entry for entry in resources["resources"]}
    assert by_name["pytorchjobs"]["kind"] == "PyTorchJob"
    assert by_name["pytorchjobs"]["namespaced"] is True
    assert "watch" in by_name["pytorchjobs"]["verbs"]
    assert by_name["pytorchjobs/status"]["verbs"] == ["get", "patch", "update"]
    _, core = await call(http, "GET", "/api/v1")
    core_names = {entry["name"] for entry in core["resources"]}
    assert {"pods", "pods/log", "pods/status", "namespaces", "events"} <= core_names
    status, _ = await call(http, "GET", "/apis/example.com/v1")
    assert status == 404


async def test_openapi_v3_documents(http: aiohttp.ClientSession) -> None:
    status, root = await call(http, "GET", "/openapi/v3")
    assert status == 200
    url = root["paths"]["apis/kubeflow.org/v1"]["serverRelativeURL"]
    assert root["paths"]["api/v1"]["serverRelativeURL"] == "/openapi/v3/api/v1"

    status, document = await call(http, "GET", url)
    assert status == 200
    path = "/apis/kubeflow.org/v1/namespaces/{namespace}/pytorchjobs/{name}"
    patch = document["paths"][path]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "kubeflow.org",
        "version": "v1",
        "kind": "PyTorchJob",
    }
    names = [parameter["name"] for parameter in patch["parameters"]]
    assert "fieldValidation" in names
    content = patch["requestBody"]["content"]
    assert "application/strategic-merge-patch+json" not in content
    status, _ = await call(http, "GET", "/openapi/v3/apis/unknown.io/v1")
    assert status == 404


async def test_missing_or_wrong_token_gets_401(bare_cluster: FakeCluster) -> None:
    expected = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    async with aiohttp.ClientSession(base_url=bare_cluster.url) as session:
        async with session.get(PJ) as response:
            assert response.status == 401
            assert await response.json() == expected
        wrong = {"Authorization": "Bearer not-the-token"}
        async with session.get("/version", headers=wrong) as response:
            assert response.status == 401


async def test_create_sets_server_fields(http: aiohttp.ClientSession) -> None:
    body = job("j")
    body["status"] = {"conditions": [{"type": "Succeeded"}]}
    created = await create(http, PJ, body)
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert meta["generation"] == 1
    assert meta["uid"]
    assert meta["resourceVersion"].isdigit()
    assert meta["creationTimestamp"].endswith("Z")
    assert "status" not in created, "a status subresource ignores status on create"


async def test_generate_name(http: aiohttp.ClientSession) -> None:
    body = job("")
    body["metadata"] = {"generateName": "train-"}
    first = await create(http, PJ, body)
    second = await create(http, PJ, body)
    assert first["metadata"]["name"].startswith("train-")
    assert len(first["metadata"]["name"]) == len("train-") + 5
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_generate_name_long_prefix(http: aiohttp.ClientSession) -> None:
    # The API server keeps 58 characters of the prefix, so the name fits in 63.
    prefix = "p" * 70
    body = {"metadata": {"generateName": prefix}}

    created = await create(http, PJ, body)
    pod = await create(http, "/api/v1/namespaces/default/pods", body)

    for name in (created["metadata"]["name"], pod["metadata"]["name"]):
        assert len(name) == 63
        assert name.startswith("p" * 58)


@pytest.mark.parametrize(
    ("version", "rejected"),
    [("7", True), ("0", False), ("-1", False), ("abc", False)],
)
async def test_create_with_resource_version(
    http: aiohttp.ClientSession, version: str, rejected: bool
) -> None:
    # etcd storage rejects a positive resourceVersion on create with a 500
    # Status that has no reason. Values that do not parse as unsigned
    # integers pass, as on a real server.
    body = {"metadata": {"name": "j", "resourceVersion": version}}

    status, answer = await call(http, "POST", PJ, json=body)

    if not rejected:
        assert status == 201
        assert answer["metadata"]["resourceVersion"] != version
        return
    assert status == 500
    assert answer == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "resourceVersion should not be set on objects to be created",
        "code": 500,
    }
    status, _ = await call(http, "GET", f"{PJ}/j")
    assert status == 404, "the rejected object is not stored"


async def test_create_duplicate_gets_409(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j"))
    status, body = await call(http, "POST", PJ, json=job("j"))
    assert status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'pytorchjobs.kubeflow.org "j" already exists'
    assert body["details"] == {
        "name": "j",
        "group": "kubeflow.org",
        "kind": "pytorchjobs",
    }


async def test_create_invalid_names_get_422(http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "POST", PJ, json={"metadata": {}, "spec": {}})
    assert status == 422
    assert body["reason"] == "Invalid"
    cause = body["details"]["causes"][0]
    assert cause["reason"] == "FieldValueRequired"
    assert cause["field"] == "metadata.name"
    for bad in ("Upper", "under_score", "-dash", "x" * 254):
        status, body = await call(http, "POST", PJ, json=job(bad))
        assert status == 422, bad
        assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"
        assert body["message"].startswith(f'PyTorchJob.kubeflow.org "{bad}" is invalid')
    status, _ = await call(http, "POST", PJ, json=job("a.b-c.9"))
    assert status == 201


async def test_create_in_missing_namespace_gets_404(
    http: aiohttp.ClientSession,
) -> None:
    path = "/apis/kubeflow.org/v1/namespaces/nope/pytorchjobs"
    status, body = await call(http, "POST", path, json=job("j"))
    assert status == 404
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "namespaces"}


async def test_create_namespace_mismatch_gets_400(http: aiohttp.ClientSession) -> None:
    body = job("j")
    body["metadata"]["namespace"] = "ml-platform"
    status, answer = await call(http, "POST", PJ, json=body)
    assert status == 400
    assert "does not match the namespace" in answer["message"]


async def test_get_missing_gets_exact_404(http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "GET", f"{PJ}/j")
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pytorchjobs.kubeflow.org "j" not found',
        "reason": "NotFound",
        "details": {"name": "j", "group": "kubeflow.org", "kind": "pytorchjobs"},
        "code": 404,
    }


async def test_list_label_selectors(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("a", team="ml", tier="gpu"))
    await create(http, PJ, job("b", team="ml"))
    await create(http, PJ, job("c", team="ops"))
    cases = {
        "team=ml": ["a", "b"],
        "team==ml": ["a", "b"],
        "team!=ml": ["c"],
        "team in (ml, ops)": ["a", "b", "c"],
        "team notin (ml)": ["c"],
        "tier": ["a"],
        "!tier": ["b", "c"],
        "team=ml,!tier": ["b"],
        "tier!=cpu": ["a", "b", "c"],
    }
    for selector, expected in cases.items():
        _, body = await call(http, "GET", PJ, params={"labelSelector": selector})
        names = [item["metadata"]["name"] for item in body["items"]]
        assert names == expected, selector
    status, body = await call(http, "GET", PJ, params={"labelSelector": "team in ml"})
    assert status == 400
    for empty in ("team in ()", "team notin ( )", "tier,team in ()"):
        status, body = await call(http, "GET", PJ, params={"labelSelector": empty})
        assert status == 400, empty
        assert body["reason"] == "BadRequest", empty
        assert "values set can't be empty" in body["message"], empty


async def test_list_field_selectors(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("a"))
    await create(http, PJ, job("b"))
    _, body = await call(http, "GET", PJ, params={"fieldSelector": "metadata.name=b"})
    assert [item["metadata"]["name"] for item in body["items"]] == ["b"]
    _, body = await call(http, "GET", PJ, params={"fieldSelector": "metadata.name!=b"})
    assert [item["metadata"]["name"] for item in body["items"]] == ["a"]
    status, body = await call(http, "GET", PJ, params={"fieldSelector": "spec.x=1"})
    assert status == 400
    assert body["message"] == (
        '"spec.x" is not a known field selector: only "metadata.name", '
        '"metadata.namespace"'
    )
    pods = "/api/v1/namespaces/default/pods"
    status, body = await call(http, "GET", pods, params={"fieldSelector": "spec.x=1"})
    assert status == 400
    assert body["message"] == "field label not supported: spec.x"


async def test_event_and_pod_field_selectors(http: aiohttp.ClientSession) -> None:
    events = "/api/v1/namespaces/default/events"
    for name, target in (("e1", "j1"), ("e2", "j2")):
        event = {
            "metadata": {"name": name},
            "involvedObject": {"kind": "PyTorchJob", "name": target},
            "reason": "Created",
        }
        await create(http, events, event)
    query = {"fieldSelector": "involvedObject.name=j2,involvedObject.kind=PyTorchJob"}
    _, body = await call(http, "GET", events, params=query)
    assert [item["metadata"]["name"] for item in body["items"]] == ["e2"]
    await create(http, PODS, {"metadata": {"name": "p"}, "spec": {"containers": []}})
    _, body = await call(
        http, "GET", PODS, params={"fieldSelector": "status.phase=Pending"}
    )
    assert [item["metadata"]["name"] for item in body["items"]] == ["p"]
    assert "kind" not in body["items"][0], "built-in list items carry no kind"


async def test_list_pagination(http: aiohttp.ClientSession) -> None:
    for index in range(5):
        await create(http, PJ, job(f"j{index}"))
    names: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"limit": "2"}
        if token:
            params["continue"] = token
        _, body = await call(http, "GET", PJ, params=params)
        names += [item["metadata"]["name"] for item in body["items"]]
        pages += 1
        token = body["metadata"].get("continue")
        if not token:
            break
    assert names == ["j0", "j1", "j2", "j3", "j4"]
    assert pages == 3


async def test_list_limit_edges(http: aiohttp.ClientSession) -> None:
    for index in range(2):
        await create(http, PJ, job(f"j{index}"))
    _, body = await call(http, "GET", PJ, params={"limit": "2"})
    assert "continue" not in body["metadata"], "an exact last page has no token"
    _, body = await call(http, "GET", PJ, params={"limit": "1"})
    assert body["metadata"]["remainingItemCount"] == 1
    selected = {"limit": "1", "labelSelector": "!missing"}
    _, body = await call(http, "GET", PJ, params=selected)
    assert "continue" in body["metadata"]
    assert "remainingItemCount" not in body["metadata"], "not counted with selectors"
    status, _ = await call(http, "GET", PJ, params={"continue": "garbage!"})
    assert status == 400


async def test_expired_continue_gets_410(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    for index in range(3):
        await create(http, PJ, job(f"j{index}"))
    _, body = await call(http, "GET", PJ, params={"limit": "1"})
    bare_cluster.expire_continue_tokens()
    params = {"limit": "1", "continue": body["metadata"]["continue"]}
    status, answer = await call(http, "GET", PJ, params=params)
    assert status == 410
    assert answer["reason"] == "Expired"


async def test_list_across_namespaces(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("a"))
    other = "/apis/kubeflow.org/v1/namespaces/ml-platform/pytorchjobs"
    await create(http, other, job("b"))
    _, body = await call(http, "GET", "/apis/kubeflow.org/v1/pytorchjobs")
    found = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in body["items"]]
    assert found == [("default", "a"), ("ml-platform", "b")]
    _, body = await call(http, "GET", other)
    assert [item["metadata"]["name"] for item in body["items"]] == ["b"]


async def test_replace_conflict_and_generation(http: aiohttp.ClientSession) -> None:
    created = await create(http, PJ, job("j"))
    changed = dict(created, spec={"pytorchReplicaSpecs": {"Master": {"replicas": 2}}})
    status, replaced = await call(http, "PUT", f"{PJ}/j", json=changed)
    assert status == 200
    assert replaced["metadata"]["generation"] == 2
    assert int(replaced["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    status, body = await call(http, "PUT", f"{PJ}/j", json=changed)
    assert status == 409
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]
    labels_only = dict(replaced)
    labels_only["metadata"] = dict(replaced["metadata"], labels={"a": "b"})
    _, relabelled = await call(http, "PUT", f"{PJ}/j", json=labels_only)
    assert relabelled["metadata"]["generation"] == 2, "metadata changes keep generation"


async def test_custom_resource_put_needs_version(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j"))
    status, body = await call(http, "PUT", f"{PJ}/j", json=job("j"))
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "metadata.resourceVersion"
    cm_path = "/api/v1/namespaces/default/configmaps"
    await create(http, cm_path, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    status, body = await call(
        http,
        "PUT",
        f"{cm_path}/c",
        json={"metadata": {"name": "c"}, "data": {"a": "2"}},
    )
    assert status == 200, "built-in types accept an unconditional PUT"
    assert body["data"] == {"a": "2"}


async def test_put_name_mismatch_gets_400(http: aiohttp.ClientSession) -> None:
    created = await create(http, PJ, job("j"))
    created["metadata"]["name"] = "other"
    status, _ = await call(http, "PUT", f"{PJ}/j", json=created)
    assert status == 400


async def test_merge_patch(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j", keep="1", drop="2"))
    patch = {"metadata": {"labels": {"drop": None, "new": "3"}}}
    status, body = await call(http, "PATCH", f"{PJ}/j", json=patch, headers=MERGE)
    assert status == 200
    assert body["metadata"]["labels"] == {"keep": "1", "new": "3"}
    assert body["metadata"]["generation"] == 1


async def test_json_patch_and_failed_test(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j"))
    ops = [
        {"op": "test", "path": "/spec/pytorchReplicaSpecs/Master/replicas", "value": 1},
        {
            "op": "replace",
            "path": "/spec/pytorchReplicaSpecs/Master/replicas",
            "value": 4,
        },
        {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "c"}},
    ]
    status, body = await call(
        http, "PATCH", f"{PJ}/j", data=_dumps(ops), headers=JSON_PATCH
    )
    assert status == 200
    assert body["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] == 4
    assert body["metadata"]["generation"] == 2
    failing = [
        {"op": "test", "path": "/spec/pytorchReplicaSpecs/Master/replicas", "value": 1}
    ]
    status, body = await call(
        http, "PATCH", f"{PJ}/j", data=_dumps(failing), headers=JSON_PATCH
    )
    # The API server drops the failing operation's text and sends its
    # generic 422 message with empty details.
    assert status == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        "the server rejected our request due to an error in our request"
    )
    assert body["details"] == {}
    remove_missing = [{"op": "remove", "path": "/spec/nothing"}]
    status, body = await call(
        http, "PATCH", f"{PJ}/j", data=_dumps(remove_missing), headers=JSON_PATCH
    )
    assert status == 422
    assert body["details"] == {}


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"op": "add"}, "cannot unmarshal object into Go value of type []"),
        ("add", "cannot unmarshal string into Go value of type []"),
        (["add"], "cannot unmarshal string into Go value of type handlers."),
    ],
)
async def test_json_patch_not_a_list_gets_400(
    http: aiohttp.ClientSession, patch: Any, error: str
) -> None:
    await create(http, PJ, job("j"))

    status, body = await call(
        http, "PATCH", f"{PJ}/j", data=_dumps(patch), headers=JSON_PATCH
    )

    assert status == 400
    assert body["reason"] == "BadRequest"
    assert body["message"].startswith("error decoding patch: json: ")
    assert error in body["message"]


async def test_json_patch_null_changes_nothing(http: aiohttp.ClientSession) -> None:
    created = await create(http, PJ, job("j"))

    status, body = await call(http, "PATCH", f"{PJ}/j", data="null", headers=JSON_PATCH)

    assert status == 200
    assert (
        body["metadata"]["resourceVersion"] == (created["metadata"]["resourceVersion"])
    )


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value)


async def test_unsupported_patch_types_get_415(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j"))
    for content_type in ("application/strategic-merge-patch+json", "application/json"):
        status, body = await call(
            http,
            "PATCH",
            f"{PJ}/j",
            data="{}",
            headers={"Content-Type": content_type},
        )
        assert status == 415, content_type
        assert body["reason"] == "UnsupportedMediaType"
    await create(http, PODS, {"metadata": {"name": "p"}, "spec": {"containers": []}})
    strategic = {"Content-Type": "application/strategic-merge-patch+json"}
    patch = {"metadata": {"labels": {"x": "y"}}}
    status, body = await call(
        http, "PATCH", f"{PODS}/p", data=_dumps(patch), headers=strategic
    )
    assert status == 200, "built-in types accept strategic merge patches"
    assert body["metadata"]["labels"] == {"x": "y"}


async def test_patch_version_is_precondition(http: aiohttp.ClientSession) -> None:
    created = await create(http, PJ, job("j"))
    stale = {"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}}
    status, _ = await call(http, "PATCH", f"{PJ}/j", json=stale, headers=MERGE)
    assert status == 409
    fresh = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    status, _ = await call(http, "PATCH", f"{PJ}/j", json=fresh, headers=MERGE)
    assert status == 200


async def test_patch_missing_gets_404(http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "PATCH", f"{PJ}/nope", json={}, headers=MERGE)
    assert status == 404
    assert body["reason"] == "NotFound"


async def test_apply_needs_field_manager(http: aiohttp.ClientSession) -> None:
    apply = {"Content-Type": "application/apply-patch+yaml"}
    status, _ = await call(
        http, "PATCH", f"{PJ}/j", data=_dumps(job("j")), headers=apply
    )
    assert status == 400
    query = {"fieldManager": "tests"}
    status, body = await call(
        http, "PATCH", f"{PJ}/j", data=_dumps(job("j")), headers=apply, params=query
    )
    assert status == 201, "apply creates a missing object"
    body_yaml = "metadata:\n  name: j\n  labels:\n    via: yaml\n"
    status, body = await call(
        http, "PATCH", f"{PJ}/j", data=body_yaml, headers=apply, params=query
    )
    assert status == 200
    assert body["metadata"]["labels"] == {"via": "yaml"}


async def test_status_subresource_isolation(http: aiohttp.ClientSession) -> None:
    created = await create(http, PJ, job("j"))
    status_body = dict(created, status={"conditions": [{"type": "Running"}]})
    status_body["spec"] = {"changed": True}
    code, after = await call(http, "PUT", f"{PJ}/j/status", json=status_body)
    assert code == 200
    assert after["status"] == {"conditions": [{"type": "Running"}]}
    assert after["spec"] == created["spec"], "a status write ignores spec"
    assert after["metadata"]["generation"] == 1
    main_body = dict(after, status={"conditions": []})
    code, after_main = await call(http, "PUT", f"{PJ}/j", json=main_body)
    assert code == 200
    assert after_main["status"] == {"conditions": [{"type": "Running"}]}
    patch = {"status": {"replicaStatuses": {"Master": {"active": 1}}}}
    code, patched = await call(
        http, "PATCH", f"{PJ}/j/status", json=patch, headers=MERGE
    )
    assert code == 200
    assert patched["status"]["replicaStatuses"] == {"Master": {"active": 1}}
    code, got = await call(http, "GET", f"{PJ}/j/status")
    assert code == 200
    assert got["status"]["conditions"] == [{"type": "Running"}]


async def test_delete_returns_success_status(http: aiohttp.ClientSession) -> None:
    created = await create(http, PJ, job("j"))
    status, body = await call(http, "DELETE", f"{PJ}/j")
    assert status == 200
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": "j",
            "group": "kubeflow.org",
            "kind": "pytorchjobs",
            "uid": created["metadata"]["uid"],
        },
    }
    status, _ = await call(http, "DELETE", f"{PJ}/j")
    assert status == 404


async def test_delete_dry_run_in_body_keeps_object(
    http: aiohttp.ClientSession,
) -> None:
    await create(http, PJ, job("a", run="1"))
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]}

    status, body = await call(http, "DELETE", f"{PJ}/a", json=options)
    assert status == 200
    assert body["metadata"]["name"] == "a"
    status, body = await call(
        http, "DELETE", PJ, json=options, params={"labelSelector": "run=1"}
    )
    assert status == 200
    assert [item["metadata"]["name"] for item in body["items"]] == ["a"]
    status, _ = await call(http, "GET", f"{PJ}/a")
    assert status == 200
    bad = {"kind": "DeleteOptions", "dryRun": ["Some"]}
    status, _ = await call(http, "DELETE", f"{PJ}/a", json=bad)
    assert status == 400


async def test_delete_respects_finalizers(http: aiohttp.ClientSession) -> None:
    body = job("j")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    await create(http, PJ, body)
    status, marked = await call(http, "DELETE", f"{PJ}/j")
    assert status == 200
    assert marked["metadata"]["deletionTimestamp"]
    status, _ = await call(http, "GET", f"{PJ}/j")
    assert status == 200
    patch = {"metadata": {"finalizers": None}}
    status, _ = await call(http, "PATCH", f"{PJ}/j", json=patch, headers=MERGE)
    assert status == 200
    status, _ = await call(http, "GET", f"{PJ}/j")
    assert status == 404


async def test_delete_preconditions(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j"))
    options = {"kind": "DeleteOptions", "preconditions": {"uid": "not-the-uid"}}
    status, body = await call(http, "DELETE", f"{PJ}/j", json=options)
    assert status == 409
    assert "Precondition failed" in body["message"]


async def test_delete_cascades_to_dependents(http: aiohttp.ClientSession) -> None:
    owner = await create(http, PJ, job("j"))
    reference = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "name": "j",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    for name in ("p1", "p2"):
        pod = {"metadata": {"name": name, "ownerReferences": [reference]}}
        await create(http, PODS, dict(pod, spec={"containers": []}))
    await call(http, "DELETE", f"{PJ}/j", json={"propagationPolicy": "Background"})
    _, pods = await call(http, "GET", PODS)
    assert pods["items"] == []


async def test_orphan_keeps_dependents(http: aiohttp.ClientSession) -> None:
    owner = await create(http, PJ, job("j"))
    reference = {"kind": "PyTorchJob", "name": "j", "uid": owner["metadata"]["uid"]}
    pod = {"metadata": {"name": "p", "ownerReferences": [reference]}, "spec": {}}
    await create(http, PODS, pod)
    await call(http, "DELETE", f"{PJ}/j", params={"propagationPolicy": "Orphan"})
    status, kept = await call(http, "GET", f"{PODS}/p")
    assert status == 200
    assert kept["metadata"]["ownerReferences"] == []


async def test_delete_collection_with_selector(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("a", run="1"))
    await create(http, PJ, job("b", run="2"))
    status, body = await call(http, "DELETE", PJ, params={"labelSelector": "run=1"})
    assert status == 200
    assert [item["metadata"]["name"] for item in body["items"]] == ["a"]
    _, left = await call(http, "GET", PJ)
    assert [item["metadata"]["name"] for item in left["items"]] == ["b"]


async def test_cluster_scoped_types(http: aiohttp.ClientSession) -> None:
    runtime = {"metadata": {"name": "torch-distributed"}, "spec": {}}
    path = "/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes"
    created = await create(http, path, runtime)
    assert "namespace" not in created["metadata"]
    status, _ = await call(http, "GET", f"{path}/torch-distributed")
    assert status == 200
    created_ns = await create(
        http, "/api/v1/namespaces", {"metadata": {"name": "team-a"}}
    )
    assert created_ns["status"] == {"phase": "Active"}
    await create(
        http, "/api/v1/namespaces/team-a/configmaps", {"metadata": {"name": "c"}}
    )
    status, _ = await call(http, "DELETE", "/api/v1/namespaces/team-a")
    assert status == 200
    status, _ = await call(http, "GET", "/api/v1/namespaces/team-a/configmaps/c")
    assert status == 404


async def test_secret_string_data_is_encoded(http: aiohttp.ClientSession) -> None:
    secret = {"metadata": {"name": "s"}, "stringData": {"token": "abc"}}
    created = await create(http, "/api/v1/namespaces/default/secrets", secret)
    assert created["data"] == {"token": "YWJj"}
    assert "stringData" not in created
    assert created["type"] == "Opaque"


async def test_table_output_for_kubectl(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j"))
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    _, table = await call(http, "GET", PJ, headers=accept)
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "State", "Age"]
    assert table["rows"][0]["cells"][0] == "j"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    _, single = await call(http, "GET", f"{PJ}/j", headers=accept)
    assert single["kind"] == "Table"


async def test_protobuf_accept_gets_json(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j"))
    accept = {"Accept": "application/vnd.kubernetes.protobuf, application/json"}
    async with http.get(f"{PJ}/j", headers=accept) as response:
        assert response.status == 200
        assert response.content_type == "application/json"


async def test_unknown_paths_get_404(http: aiohttp.ClientSession) -> None:
    for path in ("/apis/kubeflow.org/v1/namespaces/default/widgets", "/nothing"):
        status, body = await call(http, "GET", path)
        assert status == 404, path
        assert body["reason"] == "NotFound"
    status, _ = await call(http, "GET", f"{PJ}/j/log")
    assert status == 404


async def test_request_stats(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    await create(http, PJ, job("j"))
    await call(http, "GET", PJ)
    await call(http, "GET", f"{PJ}/j")
    stats = bare_cluster.stats
    assert stats.requests_by_verb["create"] == 1
    assert stats.requests_by_verb["list"] == 1
    assert stats.requests_by_verb["get"] == 1
    assert stats.requests_by_resource["list pytorchjobs"] == 1


async def test_generation_only_where_tracked(http: aiohttp.ClientSession) -> None:
    config_maps = "/api/v1/namespaces/default/configmaps"
    cm = {"metadata": {"name": "c"}, "data": {"a": "1"}}
    status, created = await call(http, "POST", config_maps, json=cm)
    assert status == 201
    assert "generation" not in created["metadata"]
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    body = {"metadata": {"name": "j"}, "spec": {"parallelism": 1, "template": {}}}
    status, job_created = await call(http, "POST", jobs, json=body)
    assert status == 201
    assert job_created["metadata"]["generation"] == 1
    status, patched = await call(
        http, "PATCH", f"{jobs}/j", json={"spec": {"parallelism": 2}}, headers=MERGE
    )
    assert status == 200
    assert patched["metadata"]["generation"] == 2


async def test_custom_top_level_field_bumps_generation(
    http: aiohttp.ClientSession,
) -> None:
    await create(http, PJ, job("j"))

    status, patched = await call(
        http, "PATCH", f"{PJ}/j", json={"extra": {"x": 1}}, headers=MERGE
    )

    assert status == 200
    assert patched["metadata"]["generation"] == 2


async def test_table_columns_of_core_types(http: aiohttp.ClientSession) -> None:
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    events = "/api/v1/namespaces/default/events"
    event = {
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Pulled",
        "message": "pulled the image",
        "type": "Normal",
    }
    await create(http, events, event)
    cm = {"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}
    await create(http, "/api/v1/namespaces/default/configmaps", cm)

    _, event_table = await call(http, "GET", events, headers=accept)
    _, cm_table = await call(
        http, "GET", "/api/v1/namespaces/default/configmaps", headers=accept
    )

    names = [column["name"] for column in event_table["columnDefinitions"]]
    assert names == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert event_table["rows"][0]["cells"][1:] == [
        "Normal",
        "Pulled",
        "pod/p",
        "pulled the image",
    ]
    assert [column["name"] for column in cm_table["columnDefinitions"]] == [
        "Name",
        "Data",
        "Age",
    ]
    assert cm_table["rows"][0]["cells"][:2] == ["c", 2]


async def test_namespaces_get_default_account(http: aiohttp.ClientSession) -> None:
    status, _ = await call(
        http, "POST", "/api/v1/namespaces", json={"metadata": {"name": "team-a"}}
    )
    assert status == 201

    status, account = await call(
        http, "GET", "/api/v1/namespaces/team-a/serviceaccounts/default"
    )

    assert status == 200
    assert account["metadata"]["namespace"] == "team-a"
    status, _ = await call(
        http, "GET", "/api/v1/namespaces/default/serviceaccounts/default"
    )
    assert status == 200


async def test_invalid_labels_get_422(http: aiohttp.ClientSession) -> None:
    cases = [
        ({"team": "Fraud Model"}, 'Invalid value: "Fraud Model": a valid label must'),
        ({"team": "ä"}, 'Invalid value: "ä": a valid label must'),
        ({"team": "x" * 64}, "must be no more than 63 characters"),
        ({"bad key": "x"}, 'Invalid value: "bad key": name part must consist'),
        ({"Example.com/k": "x"}, "prefix part a lowercase RFC 1123 subdomain"),
        ({"/k": "x"}, "prefix part must be non-empty"),
    ]
    for labels, expected in cases:
        status, body = await call(http, "POST", PJ, json=job("j", **labels))
        assert status == 422, labels
        assert body["reason"] == "Invalid", labels
        assert expected in body["message"], labels
        assert body["details"]["causes"][0]["field"] == "metadata.labels", labels
    ok = {"app.kubernetes.io/name": "A_b.c-1", "empty": ""}
    status, _ = await call(http, "POST", PJ, json=job("j", **ok))
    assert status == 201


async def test_label_updates_are_validated(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j"))
    patch = {"metadata": {"labels": {"team": "two words"}}}

    status, body = await call(http, "PATCH", f"{PJ}/j", json=patch, headers=MERGE)

    assert status == 422
    assert body["details"]["causes"][0]["field"] == "metadata.labels"
    number = {"metadata": {"labels": {"team": 1}}}
    status, body = await call(http, "PATCH", f"{PJ}/j", json=number, headers=MERGE)
    assert status == 400
    bad_key = {"metadata": {"annotations": {"a b": "x"}}}
    status, body = await call(http, "PATCH", f"{PJ}/j", json=bad_key, headers=MERGE)
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "metadata.annotations"
    huge = {"metadata": {"annotations": {"big": "x" * (256 * 1024)}}}
    status, body = await call(http, "PATCH", f"{PJ}/j", json=huge, headers=MERGE)
    assert status == 422
    assert body["details"]["causes"][0]["reason"] == "FieldValueTooLong"


async def test_partial_object_metadata_views(http: aiohttp.ClientSession) -> None:
    await create(http, PJ, job("j", team="ml"))
    as_list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    as_object = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

    _, listed = await call(
        http, "GET", PJ, headers={"Accept": f"{as_list},application/json"}
    )
    _, single = await call(http, "GET", f"{PJ}/j", headers={"Accept": as_object})
    _, fallback = await call(
        http, "GET", f"{PJ}/j", headers={"Accept": f"{as_list},application/json"}
    )

    assert listed["kind"] == "PartialObjectMetadataList"
    assert listed["apiVersion"] == "meta.k8s.io/v1"
    (item,) = listed["items"]
    assert item["kind"] == "PartialObjectMetadata"
    assert item["metadata"]["labels"] == {"team": "ml"}
    assert "spec" not in item
    assert single["kind"] == "PartialObjectMetadata"
    assert "spec" not in single
    assert fallback["kind"] == "PyTorchJob", "a list view on one object falls back"
    params = {"watch": "true", "timeoutSeconds": "1"}
    async with http.get(PJ, params=params, headers={"Accept": as_object}) as response:
        line = await response.content.readline()
    event = json.loads(line)
    assert event["type"] == "ADDED"
    assert event["object"]["kind"] == "PartialObjectMetadata"


async def test_large_response_is_gzipped(
    http: aiohttp.ClientSession, bare_cluster: FakeCluster
) -> None:
    # The API server gzips bodies above 128 KiB for clients that accept gzip.
    configmaps = "/api/v1/namespaces/default/configmaps"
    await create(http, configmaps, {"metadata": {"name": "small"}})
    await create(
        http, configmaps, {"metadata": {"name": "big"}, "data": {"v": "x" * 200_000}}
    )
    gzip_only = {"Accept-Encoding": "gzip"}

    async with http.get(
        configmaps, headers=gzip_only, auto_decompress=False
    ) as response:
        raw = await response.read()
        encoding = response.headers.get("Content-Encoding")
        vary = response.headers.get("Vary")
    async with http.get(
        configmaps, headers={"Accept-Encoding": "identity"}, auto_decompress=False
    ) as response:
        plain = await response.read()
        plain_encoding = response.headers.get("Content-Encoding")
    async with http.get(
        f"{configmaps}/small", headers=gzip_only, auto_decompress=False
    ) as response:
        small_encoding = response.headers.get("Content-Encoding")

    assert encoding == "gzip"
    assert vary == "Accept-Encoding"
    assert len(raw) < 10_000
    assert gzip.decompress(raw) == plain
    assert plain_encoding is None, "identity gets the plain body"
    assert len(plain) > 128 * 1024
    assert small_encoding is None, "bodies up to 128 KiB are never compressed"
