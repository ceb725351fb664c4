"""Faults a real server cannot be made to show, with respx as the server."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import respx

from maestro_ml_async import (
    AsyncMaestroClient,
    MLflowException,
    NotFoundException,
    NotSupportedByServerException,
    ServerUnavailableException,
    ValidationException,
)
from maestro_ml_async._config import build_config
from maestro_ml_async.resources._log_batch import (
    MAX_BATCH_BYTES,
    normalize_metrics,
    split_batch,
)
from maestro_ml_async.resources._registry_watch import watch_registry
from maestro_ml_async.types.events import RegistryEventType

BASE = "http://127.0.0.1:5999"
API = BASE + "/api/2.0/mlflow"
PROXY = BASE + "/api/2.0/mlflow-artifacts/artifacts"
RUN_ID = "a" * 32
SERVING_OFF = (
    "Endpoint: /api/2.0/mlflow-artifacts/artifacts/<path:artifact_path> disabled due "
    "to the mlflow server running with `--no-serve-artifacts`. To enable artifacts "
    "server functionality, run `mlflow server` with `--serve-artifacts`"
)


@pytest.fixture
async def fake() -> AsyncIterator[AsyncMaestroClient]:
    config = build_config(
        {"mlflow_uri": BASE, "max_retries": 2, "retry_backoff_base": 0.001}
    )
    async with AsyncMaestroClient(config=config) as client:
        yield client


def run_body(
    artifact_uri: str = f"mlflow-artifacts:/1/{RUN_ID}/artifacts",
) -> dict[str, Any]:
    return {
        "run": {
            "info": {
                "run_id": RUN_ID,
                "experiment_id": "1",
                "status": "RUNNING",
                "artifact_uri": artifact_uri,
            },
            "data": {},
        }
    }


@respx.mock
async def test_log_batch_split_counts(fake: AsyncMaestroClient) -> None:
    route = respx.post(f"{API}/runs/log-batch").mock(
        return_value=httpx.Response(200, json={})
    )
    metrics = [("m", float(i), 1000 + i, i) for i in range(2500)]
    params = {f"p{i}": i for i in range(250)}
    tags = {f"t{i}": "x" for i in range(150)}
    requests = await fake.runs.log_batch(RUN_ID, metrics, params, tags)
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert requests == len(bodies)
    for body in bodies:
        assert body["run_id"] == RUN_ID
        assert len(body["metrics"]) <= 1000
        assert len(body["params"]) <= 100
        assert len(body["tags"]) <= 100
        assert len(body["metrics"]) + len(body["params"]) + len(body["tags"]) <= 1000
    sent_metrics = [m["step"] for body in bodies for m in body["metrics"]]
    assert sent_metrics == list(range(2500))
    assert sum(len(b["params"]) for b in bodies) == 250
    assert sum(len(b["tags"]) for b in bodies) == 150
    # 2,900 entities need at least 3 requests; params alone need 3.
    assert len(bodies) == 3
    assert all(isinstance(m["timestamp"], int) for b in bodies for m in b["metrics"])


@respx.mock
async def test_log_batch_split_by_size(fake: AsyncMaestroClient) -> None:
    route = respx.post(f"{API}/runs/log-batch").mock(
        return_value=httpx.Response(200, json={})
    )
    params = {f"p{i}": "v" * 6000 for i in range(100)}
    # Two UTF-8 bytes per character: the limit must be counted in bytes.
    tags = {f"t{i}": "é" * 8000 for i in range(100)}
    await fake.runs.log_batch(RUN_ID, params=params, tags=tags)
    sizes = [len(call.request.content) for call in route.calls]
    assert max(sizes) <= MAX_BATCH_BYTES
    assert len(sizes) >= 3
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert sum(len(b["tags"]) for b in bodies) == 100
    assert sum(len(b["params"]) for b in bodies) == 100


@respx.mock
async def test_log_batch_failure_stops(fake: AsyncMaestroClient) -> None:
    route = respx.post(f"{API}/runs/log-batch").mock(
        side_effect=[
            httpx.Response(200, json={}),
            httpx.Response(
                400, json={"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"}
            ),
            httpx.Response(200, json={}),
        ]
    )
    with pytest.raises(ValidationException, match="bad"):
        await fake.runs.log_batch(RUN_ID, [("m", 1.0, 1, i) for i in range(2500)])
    assert route.call_count == 2


def test_split_batch_rejects_entity_over_limit() -> None:
    metrics = normalize_metrics([("m", 1.0, 1, 0)])
    with pytest.raises(ValidationException, match="at most"):
        split_batch(metrics, [{"key": "p", "value": "x" * 5000}], [], max_bytes=1000)


def test_split_batch_empty() -> None:
    assert split_batch([], [], []) == []


@respx.mock
async def test_artifacts_serving_off_is_clear(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    respx.get(f"{API}/artifacts/list").mock(return_value=httpx.Response(200, json={}))
    download = respx.get(url__startswith=PROXY).mock(
        return_value=httpx.Response(503, text=SERVING_OFF)
    )
    upload = respx.put(url__startswith=PROXY).mock(
        return_value=httpx.Response(503, text=SERVING_OFF)
    )
    with pytest.raises(NotSupportedByServerException, match="--serve-artifacts"):
        await fake.artifacts.download(RUN_ID, "model.pkl", tmp_path / "out")
    source = tmp_path / "f.bin"
    source.write_bytes(b"abc")
    with pytest.raises(NotSupportedByServerException, match="artifact serving is off"):
        await fake.artifacts.upload_file(RUN_ID, source)
    # A plain-text 503 is a configuration, not a transient failure: no retries.
    assert download.call_count == 1
    assert upload.call_count == 1
    assert not any(p.name.endswith(".part") for p in (tmp_path / "out").rglob("*"))


@respx.mock
async def test_artifacts_transient_503_retried(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    respx.get(f"{API}/artifacts/list").mock(return_value=httpx.Response(200, json={}))
    unavailable = {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}
    route = respx.get(f"{PROXY}/1/{RUN_ID}/artifacts/data/x%20y.bin").mock(
        side_effect=[
            httpx.Response(503, json=unavailable),
            httpx.Response(200, content=b"payload"),
        ]
    )
    target = await fake.artifacts.download(RUN_ID, "data/x y.bin", tmp_path)
    assert target.read_bytes() == b"payload"
    assert route.call_count == 2
    route.side_effect = None
    route.return_value = httpx.Response(503, json=unavailable)
    with pytest.raises(ServerUnavailableException):
        await fake.artifacts.download(RUN_ID, "data/x y.bin", tmp_path / "again")


@respx.mock
async def test_artifacts_without_proxy_root(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    respx.get(f"{API}/runs/get").mock(
        return_value=httpx.Response(200, json=run_body("/srv/mlruns/1/abc/artifacts"))
    )
    source = tmp_path / "f.bin"
    source.write_bytes(b"abc")
    with pytest.raises(NotSupportedByServerException, match="--serve-artifacts"):
        await fake.artifacts.upload_file(RUN_ID, source)


@respx.mock
async def test_download_rejects_server_listed_traversal(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    respx.get(f"{API}/artifacts/list").mock(
        return_value=httpx.Response(
            200,
            json={
                "files": [
                    {"path": "model/ok.txt", "is_dir": False, "file_size": 1},
                    {"path": "model/../../evil.txt", "is_dir": False, "file_size": 1},
                ]
            },
        )
    )
    proxy = respx.get(url__startswith=PROXY).mock(
        return_value=httpx.Response(200, content=b"x")
    )
    out = tmp_path / "out"
    with pytest.raises(ValidationException, match=r"\.\."):
        await fake.artifacts.download(RUN_ID, "model", out)
    assert proxy.call_count == 0
    assert not out.exists()


@respx.mock
async def test_download_rejects_listing_outside_folder(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    respx.get(f"{API}/artifacts/list").mock(
        return_value=httpx.Response(
            200, json={"files": [{"path": "other/file.txt", "is_dir": False}]}
        )
    )
    with pytest.raises(ValidationException, match="outside that folder"):
        await fake.artifacts.download(RUN_ID, "model", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@respx.mock
async def test_download_file_listed_as_itself(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    # Some artifact stores list a file path as that one file, not as empty.
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    listing = respx.get(f"{API}/artifacts/list").mock(
        return_value=httpx.Response(
            200,
            json={"files": [{"path": "model/weights.bin", "file_size": 3}]},
        )
    )
    proxy = respx.get(f"{PROXY}/1/{RUN_ID}/artifacts/model/weights.bin").mock(
        return_value=httpx.Response(200, content=b"abc")
    )
    assert await fake.artifacts.list(RUN_ID, "model/weights.bin") == []
    out = await fake.artifacts.download(RUN_ID, "model/weights.bin", tmp_path)
    assert out.parts[-2:] == ("model", "weights.bin")
    assert await anyio.Path(out).read_bytes() == b"abc"
    assert proxy.call_count == 1
    assert listing.call_count == 2


@respx.mock
@pytest.mark.parametrize(
    ("requested", "listed"),
    [(None, ""), (None, "."), ("model", "model"), ("model", "model/.")],
)
async def test_list_rejects_folder_listing_itself(
    fake: AsyncMaestroClient, requested: str | None, listed: str
) -> None:
    # A folder that lists itself would make a recursive listing never end.
    respx.get(f"{API}/artifacts/list").mock(
        return_value=httpx.Response(
            200, json={"files": [{"path": listed, "is_dir": True}]}
        )
    )
    with pytest.raises(ValidationException, match=r"empty artifact path|outside"):
        await fake.artifacts.list(RUN_ID, requested, recursive=True)


@respx.mock
async def test_logged_models_on_mlflow2(fake: AsyncMaestroClient) -> None:
    html_404 = httpx.Response(
        404,
        text="<!doctype html><h1>Not Found</h1>",
        headers={"content-type": "text/html"},
    )
    respx.post(f"{API}/logged-models").mock(return_value=html_404)
    respx.get(url__startswith=f"{API}/logged-models/").mock(return_value=html_404)
    respx.post(f"{API}/logged-models/search").mock(return_value=html_404)
    with pytest.raises(
        NotSupportedByServerException, match="not supported by this server"
    ):
        await fake.logged_models.create("1")
    with pytest.raises(NotSupportedByServerException):
        await fake.logged_models.get("m-123")
    with pytest.raises(NotSupportedByServerException):
        await fake.logged_models.search(["1"])


@respx.mock
async def test_register_on_mlflow2_without_artifacts(
    fake: AsyncMaestroClient,
) -> None:
    # The logged-model fallback of register must not turn MLflow 2's 404 for
    # logged-models/search into "not supported": the path is simply missing.
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    respx.get(f"{API}/registered-models/get").mock(
        return_value=httpx.Response(
            404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"}
        )
    )
    respx.get(f"{API}/artifacts/list").mock(return_value=httpx.Response(200, json={}))
    search = respx.post(f"{API}/logged-models/search").mock(
        return_value=httpx.Response(404, text="<h1>Not Found</h1>")
    )
    create = respx.post(f"{API}/registered-models/create")
    with pytest.raises(NotFoundException, match="no logged model") as caught:
        await fake.models.register(RUN_ID, "model", "m")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert search.call_count == 1
    assert create.call_count == 0


@respx.mock
async def test_logged_model_missing_is_not_found(fake: AsyncMaestroClient) -> None:
    respx.get(f"{API}/logged-models/m-404").mock(
        return_value=httpx.Response(
            404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model"}
        )
    )
    with pytest.raises(NotFoundException) as caught:
        await fake.logged_models.get("m-404")
    assert not isinstance(caught.value, NotSupportedByServerException)


@respx.mock
async def test_webhooks_not_supported(fake: AsyncMaestroClient) -> None:
    respx.get(f"{API}/webhooks").mock(return_value=httpx.Response(404, text=""))
    respx.post(f"{API}/webhooks").mock(return_value=httpx.Response(404, text=""))
    with pytest.raises(
        NotSupportedByServerException, match="not supported by this server"
    ):
        await fake.webhooks.list()
    with pytest.raises(NotSupportedByServerException):
        await fake.webhooks.create(
            "n", "https://127.0.0.1/h", ["model_version.created"]
        )


@respx.mock
async def test_upload_retry_resends_whole_file(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    received: list[bytes] = []

    def accept(request: httpx.Request) -> httpx.Response:
        received.append(request.read())
        if len(received) == 1:
            return httpx.Response(502, text="bad gateway")
        return httpx.Response(200, json={})

    respx.put(f"{PROXY}/1/{RUN_ID}/artifacts/dir/blob.bin").mock(side_effect=accept)
    source = tmp_path / "blob.bin"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(payload)
    assert await fake.artifacts.upload_file(RUN_ID, source, "dir") == "dir/blob.bin"
    assert len(received) == 2
    assert received[1] == payload


@respx.mock
async def test_get_or_create_settles_race(fake: AsyncMaestroClient) -> None:
    experiment = {"experiment_id": "7", "name": "raced", "lifecycle_stage": "active"}
    lookups = respx.get(f"{API}/experiments/get-by-name").mock(
        side_effect=[
            httpx.Response(
                404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "none"}
            ),
            httpx.Response(200, json={"experiment": experiment}),
        ]
    )
    respx.post(f"{API}/experiments/create").mock(
        return_value=httpx.Response(
            400, json={"error_code": "RESOURCE_ALREADY_EXISTS", "message": "exists"}
        )
    )
    found = await fake.experiments.get_or_create("raced")
    assert found.experiment_id == "7"
    assert lookups.call_count == 2


@respx.mock
async def test_registry_watch_skips_failed_poll(fake: AsyncMaestroClient) -> None:
    unavailable = httpx.Response(
        503, json={"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}
    )
    version = {"name": "m", "version": "1", "status": "READY", "current_stage": "None"}
    respx.get(f"{API}/model-versions/search").mock(
        side_effect=[
            httpx.Response(200, json={}),
            unavailable,
            unavailable,
            unavailable,
            httpx.Response(200, json={"model_versions": [version]}),
        ]
        + [httpx.Response(200, json={"model_versions": [version]})] * 50
    )
    respx.get(f"{API}/registered-models/search").mock(
        return_value=httpx.Response(200, json={"registered_models": [{"name": "m"}]})
    )
    stream = watch_registry(fake._mlflow, "m", poll_interval=0.01)
    first = await asyncio.wait_for(stream.__anext__(), 5)
    second = await asyncio.wait_for(stream.__anext__(), 5)
    await stream.aclose()
    assert (first.type, first.version) == (RegistryEventType.VERSION_CREATED, "1")
    assert (second.type, second.version) == (RegistryEventType.VERSION_READY, "1")


@respx.mock
async def test_run_watch_repeats_failed_poll(fake: AsyncMaestroClient) -> None:
    def run_with(status: str, value: float, step: int) -> httpx.Response:
        body = run_body()
        body["run"]["info"]["status"] = status
        point = {"key": "m", "value": value, "timestamp": 1000 + step, "step": step}
        body["run"]["data"] = {"metrics": [point]}
        return httpx.Response(200, json=body)

    unavailable = httpx.Response(
        503, json={"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}
    )
    history = [
        {"key": "m", "value": 1.0, "timestamp": 1000, "step": 0},
        {"key": "m", "value": 2.0, "timestamp": 1001, "step": 1},
    ]
    respx.get(f"{API}/metrics/get-history").mock(
        side_effect=[
            httpx.Response(200, json={"metrics": history[:1]}),
            unavailable,
            unavailable,
            unavailable,
            httpx.Response(200, json={"metrics": history}),
        ]
    )
    # The failed poll is repeated from its runs/get, so three snapshots are read.
    respx.get(f"{API}/runs/get").mock(
        side_effect=[
            run_with("RUNNING", 1.0, 0),
            run_with("FINISHED", 2.0, 1),
            run_with("FINISHED", 2.0, 1),
        ]
    )
    points = [p async for p in fake.runs.watch_metrics(RUN_ID, poll_interval=0.01)]
    assert [(p.step, p.value) for p in points] == [(0, 1.0), (1, 2.0)]


@respx.mock
async def test_upload_dir_bounds_concurrency(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    in_flight = 0
    peak = 0

    async def slow_accept(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, json={})

    route = respx.put(url__startswith=PROXY).mock(side_effect=slow_accept)
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(12):
        (folder / f"f{index:02d}.txt").write_text(str(index))
    uploaded = await fake.artifacts.upload_dir(RUN_ID, folder, max_concurrency=3)
    assert len(uploaded) == 12
    assert route.call_count == 12
    assert peak == 3


@respx.mock
async def test_watch_outage_backs_off_and_logs_once(
    fake: AsyncMaestroClient, caplog: pytest.LogCaptureFixture
) -> None:
    unavailable = httpx.Response(
        503, json={"error_code": "TEMPORARILY_UNAVAILABLE", "message": "down"}
    )
    polls = respx.get(f"{API}/model-versions/search").mock(return_value=unavailable)
    respx.get(f"{API}/registered-models/search").mock(
        return_value=httpx.Response(200, json={})
    )
    stream = watch_registry(fake._mlflow, "m", poll_interval=0.01)

    with caplog.at_level("WARNING"):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(stream.__anext__(), 1.0)
    await stream.aclose()

    # Each poll is one request plus the transport's two retries. A fixed
    # 0.01 s interval would have polled about 80 times in that second.
    assert polls.call_count // 3 <= 12
    warnings = [r for r in caplog.records if "registry poll failed" in r.message]
    assert len(warnings) == 1
    assert "1 in a row" in warnings[0].message


def test_poll_backoff_doubles_up_to_ceiling() -> None:
    import logging

    from maestro_ml_async.resources._poll_backoff import (
        MAX_FAILURE_DELAY,
        PollBackoff,
    )

    backoff = PollBackoff(1.0, "test poll", logging.getLogger("test"))
    delays = [backoff.failed(RuntimeError("down")) for _ in range(10)]

    assert delays[0] == 1.0
    assert 1.0 <= delays[1] <= 2.0
    assert 4.0 <= delays[4] <= 16.0
    assert max(delays) <= MAX_FAILURE_DELAY
    backoff.succeeded()
    assert backoff.failures == 0
    slow = PollBackoff(60.0, "slow poll", logging.getLogger("test"))
    assert slow.failed(RuntimeError("down")) == 60.0
    assert slow.failed(RuntimeError("down")) == 60.0


@respx.mock
async def test_artifact_list_repeated_token_raises(fake: AsyncMaestroClient) -> None:
    from maestro_ml_async import MLflowException

    page = {"files": [{"path": "a.txt", "is_dir": False}], "next_page_token": "t"}
    listing = respx.get(f"{API}/artifacts/list").mock(
        return_value=httpx.Response(200, json=page)
    )

    with pytest.raises(MLflowException) as caught:
        await asyncio.wait_for(fake.artifacts.list(RUN_ID), 5)

    assert caught.value.error_code == "REPEATED_PAGE_TOKEN"
    assert listing.call_count == 2


WRONG_TYPE_CASES = [
    pytest.param(
        "GET", "runs/get", {"run": []}, lambda c: c.runs.get(RUN_ID), id="run-list"
    ),
    pytest.param(
        "GET",
        "runs/get",
        {"run": {"info": {"run_id": RUN_ID, "start_time": [1]}}},
        lambda c: c.runs.get(RUN_ID),
        id="run-start-time",
    ),
    pytest.param(
        "POST",
        "runs/search",
        {"runs": {"run": 1}},
        lambda c: c.runs.search("1", max_results=5),
        id="runs-not-list",
    ),
    pytest.param(
        "POST",
        "runs/search",
        {"runs": ["x"]},
        lambda c: c.runs.search("1", max_results=5),
        id="runs-item-string",
    ),
    pytest.param(
        "GET",
        "experiments/get",
        {"experiment": {"experiment_id": "1", "tags": "x"}},
        lambda c: c.experiments.get("1"),
        id="experiment-tags",
    ),
    pytest.param(
        "GET",
        "artifacts/list",
        {"files": [{"path": "a", "is_dir": "maybe"}]},
        lambda c: c.artifacts.list(RUN_ID),
        id="artifact-is-dir",
    ),
    pytest.param(
        "GET",
        "logged-models/m-1",
        {"model": "m-1"},
        lambda c: c.logged_models.get("m-1"),
        id="logged-model-string",
    ),
    pytest.param(
        "GET",
        "webhooks/w-1",
        {"webhook": {"webhook_id": "w-1", "events": 3}},
        lambda c: c.webhooks.get("w-1"),
        id="webhook-events",
    ),
]


@pytest.mark.parametrize(("method", "endpoint", "body", "call"), WRONG_TYPE_CASES)
@respx.mock
async def test_wrong_field_type_is_invalid_response(
    fake: AsyncMaestroClient,
    method: str,
    endpoint: str,
    body: dict[str, Any],
    call: Any,
) -> None:
    respx.route(method=method, url=f"{API}/{endpoint}").mock(
        return_value=httpx.Response(200, json=body)
    )

    with pytest.raises(MLflowException) as caught:
        await call(fake)

    assert caught.value.error_code == "INVALID_RESPONSE"
    assert caught.value.status_code == 200
    assert caught.value.path == f"/api/2.0/mlflow/{endpoint}"
    field = next(iter(body))
    assert repr(field) in str(caught.value)


@respx.mock
async def test_registry_watch_repeated_token_raises(fake: AsyncMaestroClient) -> None:
    from maestro_ml_async import MLflowException

    page = {"model_versions": [], "next_page_token": "same"}
    respx.get(f"{API}/model-versions/search").mock(
        return_value=httpx.Response(200, json=page)
    )
    respx.get(f"{API}/registered-models/search").mock(
        return_value=httpx.Response(200, json={})
    )
    stream = watch_registry(fake._mlflow, "m", poll_interval=0.01)

    # Ending the page loop early instead would yield a partial snapshot, and
    # the models on the missing pages would be reported as deleted.
    with pytest.raises(MLflowException) as caught:
        await asyncio.wait_for(stream.__anext__(), 5)
    assert caught.value.error_code == "REPEATED_PAGE_TOKEN"


@respx.mock
async def test_artifact_transfers_share_request_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = build_config({"mlflow_uri": BASE, "max_concurrency": 2})
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    in_flight = 0
    peak = 0

    async def slow_accept(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, json={})

    respx.put(url__startswith=PROXY).mock(side_effect=slow_accept)
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(8):
        (folder / f"f{index}.txt").write_text(str(index))

    caplog.set_level("DEBUG", logger="maestro_ml_async.transport")
    async with AsyncMaestroClient(config=config) as client:
        uploaded = await client.artifacts.upload_dir(RUN_ID, folder, max_concurrency=6)
    # The pool has two connections, so a third transfer waits for a free
    # slot instead of timing out in the pool's queue.
    assert len(uploaded) == 8
    assert peak == 2
    logged = [r.getMessage() for r in caplog.records if "PUT" in r.getMessage()]
    assert len(logged) == 8
    assert all("-> 200" in message for message in logged)


@respx.mock
async def test_artifact_retry_after_honoured(
    fake: AsyncMaestroClient, tmp_path: Path
) -> None:
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=run_body()))
    route = respx.put(url__startswith=PROXY).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0.3"}, text="slow down"),
            httpx.Response(200, json={}),
        ]
    )
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")

    loop = asyncio.get_running_loop()
    started = loop.time()
    await fake.artifacts.upload_file(RUN_ID, source)
    elapsed = loop.time() - started

    assert route.call_count == 2
    assert elapsed >= 0.3


@respx.mock
async def test_null_fields_read_as_missing(fake: AsyncMaestroClient) -> None:
    body = run_body()
    body["run"]["info"].update({"end_time": None, "run_name": None})
    body["run"]["data"] = {"metrics": None, "params": None, "tags": None}
    body["run"]["inputs"] = None
    respx.get(f"{API}/runs/get").mock(return_value=httpx.Response(200, json=body))
    respx.get(f"{API}/experiments/get").mock(
        return_value=httpx.Response(
            200,
            json={
                "experiment": {
                    "experiment_id": "1",
                    "name": "e",
                    "artifact_location": None,
                    "lifecycle_stage": None,
                    "tags": None,
                }
            },
        )
    )
    respx.get(f"{API}/artifacts/list").mock(
        return_value=httpx.Response(
            200, json={"files": [{"path": "a.txt", "is_dir": None, "file_size": None}]}
        )
    )

    run = await fake.runs.get(RUN_ID)
    experiment = await fake.experiments.get("1")
    files = await fake.artifacts.list(RUN_ID)

    assert run.data.metrics == []
    assert run.data.params == {}
    assert run.info.end_time is None
    assert experiment.lifecycle_stage == "active"
    assert experiment.tags == {}
    assert [(f.path, f.is_dir) for f in files] == [("a.txt", False)]


@respx.mock
async def test_webhooks_use_registry_uri() -> None:
    registry = "http://127.0.0.1:5998/api/2.0/mlflow"
    config = build_config(
        {"mlflow_uri": BASE, "mlflow_registry_uri": "http://127.0.0.1:5998"}
    )
    hook = {
        "webhook_id": "wh-1",
        "name": "n",
        "url": "https://hooks.example/h",
        "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}],
    }
    routes = [
        respx.post(f"{registry}/webhooks").mock(
            return_value=httpx.Response(200, json={"webhook": hook})
        ),
        respx.get(f"{registry}/webhooks").mock(
            return_value=httpx.Response(200, json={"webhooks": [hook]})
        ),
        respx.get(f"{registry}/webhooks/wh-1").mock(
            return_value=httpx.Response(200, json={"webhook": hook})
        ),
        respx.patch(f"{registry}/webhooks/wh-1").mock(
            return_value=httpx.Response(200, json={"webhook": hook})
        ),
        respx.post(f"{registry}/webhooks/wh-1/test").mock(
            return_value=httpx.Response(200, json={"result": {"success": True}})
        ),
        respx.delete(f"{registry}/webhooks/wh-1").mock(
            return_value=httpx.Response(200, json={})
        ),
    ]

    # MLflow's client sends webhook calls through its registry client, so a
    # separate registry server must receive them.
    async with AsyncMaestroClient(config=config) as client:
        await client.webhooks.create("n", hook["url"], ["model_version.created"])
        assert len(await client.webhooks.list()) == 1
        await client.webhooks.get("wh-1")
        await client.webhooks.update("wh-1", name="m")
        assert (await client.webhooks.test("wh-1")).success
        await client.webhooks.delete("wh-1")

    assert [route.call_count for route in routes] == [1, 1, 1, 1, 1, 1]
