"""MaestroClient end to end: the usual examples on a real MLflow server, and
paging, context variables and threads over a mock transport."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from maestro_ml_async import (
    AlreadyExistsException,
    ClientClosedError,
    MaestroClient,
    ModelNotFoundException,
)
from maestro_ml_async._sync._adapters import Pager
from maestro_ml_async.types.models import Model

EXAMPLE_MODELS = ("fraud-detector", "customer-churn")
trace_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "trace_id", default="none"
)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("maestro-ml-sync")]


@pytest.fixture
def example_models(mlflow_server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Create the models the examples name, with at least five fraud-detector
    versions; safe to run again on the same server."""
    monkeypatch.setenv("MAESTRO_ML_MLFLOW_URI", mlflow_server_url)
    with MaestroClient() as client:
        for name in EXAMPLE_MODELS:
            try:
                client.models.create(name, description="used by the sync examples")
            except AlreadyExistsException:
                pass
        versions = client.models.search_versions(f"name = '{EXAMPLE_MODELS[0]}'")
        for index in range(len(versions), 5):
            client.models.create_version(EXAMPLE_MODELS[0], f"s3://bucket/fd/{index}")
        if not client.models.search_versions(f"name = '{EXAMPLE_MODELS[1]}'"):
            client.models.create_version(EXAMPLE_MODELS[1], "s3://bucket/churn/1")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the stage APIs warn
def test_readme_examples_run_as_written(
    example_models: None, capsys: pytest.CaptureFixture[str]
) -> None:
    client = MaestroClient()
    models = client.models.list(max_results=100)
    model = client.models.get("fraud-detector")
    if model.production_version:
        print(f"Production: v{model.production_version.version}")
    client.models.transition_version_stage(
        name="fraud-detector",
        version="5",
        stage="Production",
        archive_existing_versions=True,
    )
    version = client.models.get_latest_versions("customer-churn")[0]
    production = [m for m in client.models.list() if m.production_version]

    # Other tests share the server, so the first 100 names may not include ours.
    assert 0 < len(models) <= 100
    assert all(isinstance(m, Model) for m in models)
    assert model.name == "fraud-detector"
    assert version.name == "customer-churn"
    assert "fraud-detector" in {m.name for m in production}
    refreshed = client.models.get("fraud-detector")
    assert refreshed.production_version is not None
    assert refreshed.production_version.version == "5"
    client.close()
    assert loop_threads() == []
    output = capsys.readouterr().out
    assert output == "" or output.startswith("Production: v")


def test_with_block_closes_client(example_models: None) -> None:
    with MaestroClient() as client:
        assert client.models.get("customer-churn").name == "customer-churn"
    assert client.closed
    assert loop_threads() == []
    with pytest.raises(ClientClosedError):
        client.models.get("customer-churn")


def test_errors_keep_their_type(example_models: None, unique: str) -> None:
    with MaestroClient() as client, pytest.raises(ModelNotFoundException):
        client.models.get(f"missing-{unique}")


async def test_sync_client_inside_running_loop(example_models: None) -> None:
    asyncio.get_running_loop()
    with MaestroClient() as client:
        assert client.models.get("fraud-detector").name == "fraud-detector"


def test_bulk_map_with_sync_function(example_models: None) -> None:
    with MaestroClient() as client:
        results = client.bulk_map(client.models.get, [*EXAMPLE_MODELS, "no-such-model"])
    assert [model.name for model in results.values] == list(EXAMPLE_MODELS)
    assert len(results.errors) == 1
    assert isinstance(results.errors[0], ModelNotFoundException)
    assert loop_threads() == []  # the worker threads stopped too


def test_repr_names_sync_class(mlflow_server_url: str) -> None:
    client = MaestroClient(mlflow_uri=mlflow_server_url)
    assert repr(client).startswith("MaestroClient(")
    client.close()


# --- mock transport ------------------------------------------------------------


def model_pages(total: int, per_page: int) -> httpx.MockTransport:
    """A registry whose search returns `total` models, `per_page` at a time."""

    def handler(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params.get("page_token") or 0)
        names = [f"model-{i:03d}" for i in range(start, min(start + per_page, total))]
        body: dict[str, Any] = {"registered_models": [{"name": n} for n in names]}
        if start + per_page < total:
            body["next_page_token"] = str(start + per_page)
        handler.requests.append(request)  # type: ignore[attr-defined]
        return httpx.Response(200, json=body)

    handler.requests = []  # type: ignore[attr-defined]
    return httpx.MockTransport(handler)


@pytest.fixture
def paged_client() -> Iterator[tuple[MaestroClient, list[httpx.Request]]]:
    transport = model_pages(total=25, per_page=10)
    client = MaestroClient(mlflow_uri="http://127.0.0.1:9", http_transport=transport)
    yield client, transport.handler.requests  # type: ignore[attr-defined]
    client.close()


def test_pager_is_a_sequence(
    paged_client: tuple[MaestroClient, list[httpx.Request]],
) -> None:
    client, requests = paged_client
    pager = client.models.list()
    assert isinstance(pager, Pager)
    assert requests == []  # nothing is fetched before use
    assert len(pager) == 25
    assert pager[0].name == "model-000"
    assert pager[-1].name == "model-024"
    assert [m.name for m in pager[10:12]] == ["model-010", "model-011"]
    assert len(requests) == 3
    assert [m.name for m in pager][:2] == ["model-000", "model-001"]
    assert len(requests) == 3  # the fetched list is reused


def test_pager_break_fetches_no_more_pages(
    paged_client: tuple[MaestroClient, list[httpx.Request]],
) -> None:
    client, requests = paged_client
    for model in client.models.list():
        if model.name == "model-002":
            break
    assert len(requests) == 1


def test_pager_page_and_to_list(
    paged_client: tuple[MaestroClient, list[httpx.Request]],
) -> None:
    client, _ = paged_client
    pager = client.models.list(max_results=15)
    first = pager.page()
    assert [m.name for m in first.items][:1] == ["model-000"]
    assert first.next_page_token == "10"
    second = pager.page(first.next_page_token)
    assert second.items[0].name == "model-010"
    assert len(pager.to_list()) == 15
    assert bool(client.models.list())


def test_request_sees_caller_context_variables() -> None:
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(trace_id.get())
        return httpx.Response(200, json={"registered_model": {"name": "traced"}})

    transport = httpx.MockTransport(handler)
    with MaestroClient(mlflow_uri="http://127.0.0.1:9", http_transport=transport) as c:
        token = trace_id.set("span-42")
        try:
            assert c.models.get("traced").name == "traced"
        finally:
            trace_id.reset(token)
        c.models.get("traced")
    assert seen == ["span-42", "none"]


def test_threads_share_one_client() -> None:
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        name = request.url.params["name"]
        return httpx.Response(200, json={"registered_model": {"name": name}})

    transport = httpx.MockTransport(handler)
    errors: list[BaseException] = []
    names: dict[int, list[str]] = {}
    with MaestroClient(mlflow_uri="http://127.0.0.1:9", http_transport=transport) as c:

        def work(index: int) -> None:
            try:
                names[index] = [c.models.get(f"m-{index}-{i}").name for i in range(5)]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert names == {i: [f"m-{i}-{j}" for j in range(5)] for i in range(6)}
    assert peak > 1  # the requests overlapped on the one loop
    assert loop_threads() == []
