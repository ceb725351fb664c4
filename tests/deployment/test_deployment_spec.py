"""Pure parts of deployments: manifests, labels, URIs, status parsing, patches."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest

from maestro_ml_async._exceptions import DeploymentException, ValidationException
from maestro_ml_async.resources._deployment_patch import (
    ScaleChange,
    rollback_patch,
    rollout_patch,
    scale_patch,
)
from maestro_ml_async.resources._deployment_source import (
    map_storage_uri,
    redact_uri,
    storage_uri_for_format,
)
from maestro_ml_async.resources._deployment_status import (
    describe_not_ready,
    evaluate_readiness,
)
from maestro_ml_async.resources._kserve import (
    ModelSpec,
    PredictorOptions,
    build_inference_service,
    check_deployment_name,
    check_resources,
    label_safe,
    parse_deployment,
)

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def options(**changes: Any) -> PredictorOptions:
    values: dict[str, Any] = {
        "replicas": 1,
        "max_replicas": None,
        "model_format": "mlflow",
        "protocol_version": None,
        "runtime": None,
        "resources": None,
        "strategy": "rolling",
        "canary_traffic_percent": None,
    }
    values.update(changes)
    return PredictorOptions(**values)


def isvc(status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    model = ModelSpec("churn", "2", "s3://b/churn/2", "s3://b/churn/2")
    obj = build_inference_service("svc", "ns", model, options())
    obj["metadata"].update({"generation": 2, "resourceVersion": "40", **meta})
    if status is not None:
        obj["status"] = status
    return obj


def status(
    *, observed: int = 2, ready: str = "True", reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    condition = {"type": "Ready", "status": ready}
    if reason:
        condition.update(reason=reason, message=f"{reason} happened")
    predictor = {
        "latestCreatedRevision": "svc-predictor-00002",
        "latestReadyRevision": "svc-predictor-00002",
        "traffic": [
            {
                "revisionName": "svc-predictor-00002",
                "percent": 20,
                "latestRevision": True,
            },
            {"revisionName": "svc-predictor-00001", "percent": 80},
        ],
    }
    return {
        "observedGeneration": observed,
        "conditions": [condition],
        "components": {"predictor": predictor},
        "url": "http://svc.ns.example.com",
        **extra,
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [("churn", "churn"), ("a.b_c-d", "a.b_c-d")],
)
def test_label_safe_keeps_valid(name: str, expected: str) -> None:
    assert label_safe(name) == expected


@pytest.mark.parametrize("name", ["Fraud Model ä", "-x-", "x" * 64, "ä", "a/b", "a b"])
def test_label_safe_changes_invalid(name: str) -> None:
    value = label_safe(name)
    assert LABEL_VALUE.match(value)
    assert len(value) <= 63
    assert value != label_safe(name + "!")


def test_manifest_records_model() -> None:
    model = ModelSpec("Fraud Model ä", "7", "pvc://claim/m", "mlflow-artifacts:/m")
    obj = build_inference_service(
        "svc",
        "ns",
        model,
        options(
            replicas=2,
            max_replicas=5,
            resources=check_resources({"cpu": "1"}),
            runtime="mlserver",
        ),
    )
    meta = obj["metadata"]
    assert meta["annotations"]["maestro-ml.io/model-name"] == "Fraud Model ä"
    assert meta["annotations"]["maestro-ml.io/model-version"] == "7"
    assert meta["labels"]["maestro-ml.io/model-version"] == "7"
    assert LABEL_VALUE.match(meta["labels"]["maestro-ml.io/model-name"])
    assert "serving.kserve.io/deploymentMode" not in meta["annotations"]
    predictor = obj["spec"]["predictor"]
    assert predictor["minReplicas"] == 2
    assert predictor["maxReplicas"] == 5
    assert predictor["model"] == {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",
        "storageUri": "pvc://claim/m",
        "runtime": "mlserver",
        "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}},
    }


def test_manifest_formats_and_modes() -> None:
    model = ModelSpec("m", "1", "gs://b/m", "gs://b/m")
    sklearn = build_inference_service("s", "ns", model, options(model_format="sklearn"))
    assert "protocolVersion" not in sklearn["spec"]["predictor"]["model"]
    grpc = build_inference_service(
        "s", "ns", model, options(model_format="triton", protocol_version="grpc-v2")
    )
    assert grpc["spec"]["predictor"]["model"]["protocolVersion"] == "grpc-v2"
    canary = build_inference_service("s", "ns", model, options(strategy="canary"))
    mode = canary["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    assert mode == "Knative"
    zero = build_inference_service("s", "ns", model, options(replicas=0))
    assert zero["spec"]["predictor"]["maxReplicas"] == 1


def test_resources_forms() -> None:
    sections = {"requests": {"cpu": 1}, "limits": {"memory": "2Gi"}}
    assert check_resources(sections) == {
        "requests": {"cpu": "1"},
        "limits": {"memory": "2Gi"},
    }
    with pytest.raises(ValidationException):
        check_resources({})
    with pytest.raises(ValidationException):
        check_resources({"cpu": True})
    assert check_resources({"cpu": 0.5, "memory": "1.5Gi"}) == {
        "requests": {"cpu": "0.5", "memory": "1.5Gi"},
        "limits": {"cpu": "0.5", "memory": "1.5Gi"},
    }
    with pytest.raises(ValidationException, match="not a valid quantity"):
        check_resources({"requests": {"memory": "1 Gi"}})


def test_storage_map_longest_prefix() -> None:
    mapping = {
        "mlflow-artifacts:/": "s3://all/",
        "mlflow-artifacts:/5/": "pvc://team5/",
    }
    assert map_storage_uri("mlflow-artifacts:/5/m", mapping) == "pvc://team5/m"
    assert map_storage_uri("mlflow-artifacts:/6/m", mapping) == "s3://all/6/m"
    assert map_storage_uri("s3://b/m", {}) == "s3://b/m"
    assert map_storage_uri("hf://org/model", {}) == "hf://org/model"


@pytest.mark.parametrize(
    ("uri", "mapping", "expected"),
    [
        # A value without a trailing slash still joins at a path boundary.
        (
            "mlflow-artifacts:/1/r/artifacts/model",
            {"mlflow-artifacts:/": "s3://bucket/root"},
            "s3://bucket/root/1/r/artifacts/model",
        ),
        (
            "mlflow-artifacts:/1/m",
            {"mlflow-artifacts:": "s3://bucket/"},
            "s3://bucket/1/m",
        ),
        ("mlflow-artifacts:/b/m", {"mlflow-artifacts:/": "s3://"}, "s3://b/m"),
        # A prefix matches whole path segments only: /1 is not a prefix of /10.
        (
            "mlflow-artifacts:/10/m",
            {"mlflow-artifacts:/1": "s3://one", "mlflow-artifacts:/": "s3://all/"},
            "s3://all/10/m",
        ),
        (
            "mlflow-artifacts:/1/m",
            {"mlflow-artifacts:/1": "s3://one", "mlflow-artifacts:/": "s3://all/"},
            "s3://one/m",
        ),
        ("s3://old/m", {"s3://old": "s3://new"}, "s3://new/m"),
        ("s3://old", {"s3://old": "s3://new"}, "s3://new"),
        ("s3://older/m", {"s3://old": "s3://new"}, "s3://older/m"),
        # The proxy URI with a host names a path under that server's root.
        (
            "mlflow-artifacts://mlflow.example:5000/1/m",
            {"mlflow-artifacts:/": "s3://all/"},
            "s3://all/1/m",
        ),
        (
            "mlflow-artifacts://other:5000/1/m",
            {
                "mlflow-artifacts:/": "s3://all/",
                "mlflow-artifacts://other:5000": "gs://o",
            },
            "gs://o/1/m",
        ),
        # KServe picks its downloader by a case-sensitive scheme prefix.
        ("S3://bucket/m", {}, "s3://bucket/m"),
        ("mlflow-artifacts:/1/m", {"mlflow-artifacts:/": "GS://b/"}, "gs://b/1/m"),
        # URI schemes are case-insensitive, in map keys as in URIs.
        ("mlflow-artifacts:/1/m", {"MLFLOW-ARTIFACTS:/": "s3://b/"}, "s3://b/1/m"),
        ("MLflow-Artifacts:/1/m", {"mlflow-artifacts:/": "s3://b/"}, "s3://b/1/m"),
        # A signed target keeps its query after the joined path.
        (
            "mlflow-artifacts:/5/models/x",
            {"mlflow-artifacts:/": "https://acct.example/c?sv=tok&sig=abc"},
            "https://acct.example/c/5/models/x?sv=tok&sig=abc",
        ),
        (
            "mlflow-artifacts:/5/x",
            {"mlflow-artifacts:/": "https://acct.example/c/?sv=tok"},
            "https://acct.example/c/5/x?sv=tok",
        ),
    ],
)
def test_storage_map_joins_at_boundary(
    uri: str, mapping: dict[str, str], expected: str
) -> None:
    assert map_storage_uri(uri, mapping) == expected


@pytest.mark.parametrize(
    ("uri", "model_format", "expected"),
    [
        ("s3://b/models/v1", "mlflow", "s3://b/models/v1/"),
        ("s3://b/models/v1", "MLflow", "s3://b/models/v1/"),
        ("s3://b/models/v1/", "mlflow", "s3://b/models/v1/"),
        ("s3://b", "mlflow", "s3://b/"),
        ("s3://b/model.onnx", "onnx", "s3://b/model.onnx"),
        ("s3://b/models/v1", "sklearn", "s3://b/models/v1"),
        ("s3://b/models/v1", None, "s3://b/models/v1"),
        ("gs://b/models/v1", "mlflow", "gs://b/models/v1"),
        ("pvc://claim/models/v1", "mlflow", "pvc://claim/models/v1"),
        ("hf://org/model", "mlflow", "hf://org/model"),
    ],
)
def test_storage_uri_for_format(
    uri: str, model_format: str | None, expected: str
) -> None:
    model = ModelSpec("churn", "1", uri, "mlflow-artifacts:/1/r/artifacts/model")
    adjusted = storage_uri_for_format(model, model_format)
    assert adjusted.storage_uri == expected
    assert adjusted.artifact_uri == model.artifact_uri


@pytest.mark.parametrize(
    ("uri", "mapping", "missing"),
    [
        ("s3:///x", {}, "is missing the bucket (the form is s3://<bucket>/<path>)"),
        ("gs:///x", {}, "is missing the bucket"),
        ("gs:/bucket/x", {}, "is missing the '//' after 'gs:'"),
        ("s3:bucket/x", {}, "is missing the '//' after 's3:'"),
        ("pvc:///x", {}, "is missing the PersistentVolumeClaim name"),
        ("https:///x", {}, "is missing the host"),
        ("hdfs://", {}, "is missing a path"),
        (
            "mlflow-artifacts:/1/m",
            {"mlflow-artifacts:/": "s3:///"},
            "(mapped to 's3:///1/m') is missing the bucket",
        ),
    ],
)
def test_storage_incomplete_rejected(
    uri: str, mapping: dict[str, str], missing: str
) -> None:
    with pytest.raises(DeploymentException) as caught:
        map_storage_uri(uri, mapping)
    message = str(caught.value)
    assert missing in message
    assert "does not read" not in message


def test_storage_map_case_duplicates_rejected() -> None:
    mapping = {"mlflow-artifacts:/": "s3://a/", "MLFLOW-ARTIFACTS:/": "s3://b/"}
    with pytest.raises(ValidationException, match="case-insensitive"):
        map_storage_uri("mlflow-artifacts:/1/m", mapping)


@pytest.mark.parametrize(
    ("uri", "mapping", "fragment"),
    [
        ("/data/model", {}, "local path"),
        ("file:///data/model", {}, "local path"),
        ("models:/churn/1", {}, "MLflow URI"),
        ("dbfs:/m", {}, "scheme 'dbfs'"),
        (
            "mlflow-artifacts:/1/m",
            {"mlflow-artifacts:/": "/mnt/"},
            "mapped to '/mnt/1/m'",
        ),
    ],
)
def test_storage_unreadable_rejected(
    uri: str, mapping: dict[str, str], fragment: str
) -> None:
    with pytest.raises(DeploymentException) as caught:
        map_storage_uri(uri, mapping)
    assert fragment in str(caught.value)
    assert "storage_uri_map" in str(caught.value)


def test_parse_traffic_roles() -> None:
    deployment = parse_deployment(isvc(status()))
    assert deployment.model_name == "churn"
    assert deployment.url == "http://svc.ns.example.com"
    assert deployment.canary_revision == "svc-predictor-00002"
    assert deployment.stable_revision == "svc-predictor-00001"
    assert [t.role for t in deployment.traffic] == ["canary", "stable"]
    assert deployment.up_to_date
    assert deployment.has_status


def test_readiness_cases() -> None:
    assert evaluate_readiness(parse_deployment(isvc())).state == "pending"
    assert evaluate_readiness(parse_deployment(isvc(status()))).state == "ready"
    stale_failure = isvc(status(observed=1, ready="False", reason="RevisionFailed"))
    assert evaluate_readiness(parse_deployment(stale_failure)).state == "pending"
    failed = evaluate_readiness(
        parse_deployment(isvc(status(ready="False", reason="RevisionFailed")))
    )
    assert failed.state == "failed"
    assert failed.reasons == ["RevisionFailed"]
    transient = isvc(status(ready="Unknown", reason="RevisionMissing"))
    assert evaluate_readiness(parse_deployment(transient)).state == "pending"
    ready = parse_deployment(isvc(status()))
    assert evaluate_readiness(ready, min_generation=3).state == "pending"
    assert (
        evaluate_readiness(ready, not_revision="svc-predictor-00002").state == "pending"
    )


def test_readiness_model_load_failure() -> None:
    model_status = {
        "transitionStatus": "BlockedByFailedLoad",
        "lastFailureInfo": {
            "reason": "ModelLoadFailed",
            "message": "bad",
            "exitCode": 137,
        },
    }
    obj = isvc(
        status(ready="False", reason="ModelLoadFailed", modelStatus=model_status)
    )
    verdict = evaluate_readiness(parse_deployment(obj))
    assert verdict.state == "failed"
    assert verdict.reasons == ["ModelLoadFailed"]
    assert "exit code 137" in verdict.details[0]


def test_not_ready_description() -> None:
    stale = parse_deployment(isvc(status(observed=1, ready="Unknown", reason="Slow")))
    text = describe_not_ready(stale)
    assert "observed generation 1, not 2" in text
    assert "Ready=Unknown (Slow: Slow happened)" in text
    assert "not written a status" in describe_not_ready(parse_deployment(isvc()))


def test_rollout_and_rollback_patches() -> None:
    stable = isvc(status())
    stable["spec"]["predictor"].pop("canaryTrafficPercent", None)
    model = ModelSpec("churn", "3", "s3://b/churn/3", "s3://b/churn/3")
    canary = rollout_patch(stable, model, "canary", 15)
    assert canary is not None
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 15
    annotations = canary["metadata"]["annotations"]
    assert annotations["maestro-ml.io/previous-model-version"] == "2"
    same = ModelSpec("churn", "2", "s3://b/churn/2", "s3://b/churn/2")
    assert rollout_patch(stable, same, "rolling", None) is None
    with pytest.raises(DeploymentException):
        rollback_patch(stable)

    raw = isvc(status(deploymentMode="RawDeployment"))
    with pytest.raises(DeploymentException) as caught:
        rollout_patch(raw, model, "canary", 10)
    assert "RawDeployment" in str(caught.value)


def test_scale_patch_raises_cap() -> None:
    obj = isvc(status())
    patch = scale_patch(obj, ScaleChange(replicas=4))
    assert patch["spec"]["predictor"] == {"minReplicas": 4, "maxReplicas": 4}
    obj["spec"]["predictor"]["model"]["resources"] = {"limits": {"cpu": "2"}}
    patch = scale_patch(obj, ScaleChange(resources={"requests": {"cpu": "1"}}))
    assert patch["spec"]["predictor"]["model"]["resources"] == {
        "requests": {"cpu": "1"},
        "limits": None,
    }


def test_redact_uri_hides_credentials() -> None:
    signed = "https://acct.blob.core.windows.net/c/m?sv=2024&sig=SECRET"
    assert redact_uri(signed) == "https://acct.blob.core.windows.net/c/m?<redacted>"
    assert redact_uri("https://user:SECRET@host/m") == "https://host/m"
    assert redact_uri("s3://bucket/m") == "s3://bucket/m"
    assert redact_uri("/local/path") == "/local/path"
    with pytest.raises(DeploymentException) as caught:
        map_storage_uri("ftp://user:SECRET@host/m?token=SECRET", {})
    assert "SECRET" not in str(caught.value)


def test_scale_patch_rejects_cap_below_floor() -> None:
    obj = isvc(status())
    obj["spec"]["predictor"]["minReplicas"] = 3
    with pytest.raises(ValidationException):
        scale_patch(obj, ScaleChange(max_replicas=2))
    patch = scale_patch(obj, ScaleChange(replicas=1, max_replicas=2))
    assert patch["spec"]["predictor"] == {"minReplicas": 1, "maxReplicas": 2}


def test_import_skips_kubernetes_client() -> None:
    code = (
        "import sys, maestro_ml_async.resources.deployment; "
        "sys.exit('kubernetes_asyncio' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_readiness_ignores_recovered_failure() -> None:
    # KServe leaves lastFailureInfo in place after the model loads again.
    old_failure = {"reason": "ModelLoadFailed", "message": "oom", "exitCode": 137}
    recovered = isvc(
        status(
            modelStatus={"transitionStatus": "UpToDate", "lastFailureInfo": old_failure}
        )
    )
    loading = isvc(
        status(
            ready="Unknown",
            modelStatus={
                "transitionStatus": "InProgress",
                "lastFailureInfo": old_failure,
            },
        )
    )

    assert evaluate_readiness(parse_deployment(recovered)).state == "ready"
    assert evaluate_readiness(parse_deployment(loading)).state == "pending"


def test_readiness_ignores_failure_of_old_revision() -> None:
    failure = {
        "reason": "ModelLoadFailed",
        "message": "bad",
        "modelRevisionName": "svc-predictor-00001",
    }
    obj = isvc(
        status(
            ready="Unknown",
            modelStatus={
                "transitionStatus": "BlockedByFailedLoad",
                "lastFailureInfo": failure,
            },
        )
    )

    assert evaluate_readiness(parse_deployment(obj)).state == "pending"


def test_readiness_without_observed_generation() -> None:
    ready = status()
    del ready["observedGeneration"]
    failed = status(ready="False", reason="RevisionFailed")
    del failed["observedGeneration"]
    only_url = {"url": "http://svc.ns.example.com"}

    assert evaluate_readiness(parse_deployment(isvc(ready))).state == "ready"
    assert evaluate_readiness(parse_deployment(isvc(failed))).state == "failed"
    assert evaluate_readiness(parse_deployment(isvc(only_url))).state == "pending"
    assert "not observed any generation" in describe_not_ready(
        parse_deployment(isvc(only_url))
    )


def test_deployment_name_rejects_trailing_newline() -> None:
    with pytest.raises(ValidationException):
        check_deployment_name("svc\n")
