"""Argument checks of the MLflow sub-clients: a wrong type or value raises
`ValidationException` before any request.

Every request goes to a respx router, which counts them; nothing leaves the
process. No route returns a response, because no request may be sent.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import respx

from maestro_ml_async import AsyncMaestroClient, Config, ValidationException
from maestro_ml_async._bulk import bulk_map

BASE = "http://127.0.0.1:9"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client(router: respx.MockRouter) -> AsyncIterator[AsyncMaestroClient]:
    config = Config(mlflow_uri=BASE, max_retries=0)
    async with AsyncMaestroClient(config=config) as maestro:
        yield maestro


async def first_event(iterator: AsyncIterator[Any]) -> Any:
    """Start a watch: its checks run when the first event is requested."""
    return await iterator.__anext__()


PAIRS = [("a", 1)]

# A bare string or bytes where a collection of names, ids or keys is expected
# would be split into one item per character.
STRING_AS_COLLECTION = [
    pytest.param(lambda c: c.models.get_many("abc"), id="get-many-str"),
    pytest.param(lambda c: c.models.get_many(b"abc"), id="get-many-bytes"),
    pytest.param(lambda c: c.models.get_many({"a": 1}), id="get-many-dict"),
    pytest.param(lambda c: c.models.get_many(5), id="get-many-int"),
    pytest.param(lambda c: c.models.get_versions("ab"), id="get-versions-str"),
    pytest.param(
        lambda c: c.models.set_version_tags("ab", "k", "v"), id="set-version-tags-str"
    ),
    pytest.param(
        lambda c: c.models.transition_versions("ab", "Production"),
        id="transition-versions-str",
    ),
    pytest.param(
        lambda c: c.models.get_latest_versions("m", stages=5), id="stages-int"
    ),
    pytest.param(
        lambda c: c.models.get_latest_versions("m", stages=b"Production"),
        id="stages-bytes",
    ),
    pytest.param(lambda c: first_event(c.runs.watch_many("abc")), id="watch-many-str"),
    pytest.param(
        lambda c: first_event(c.runs.watch_many(["r"], keys=5)), id="watch-keys-int"
    ),
    pytest.param(
        lambda c: c.webhooks.create("w", "https://example.com/h", 5),
        id="webhook-events-int",
    ),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("call", STRING_AS_COLLECTION)
async def test_bare_string_collection_rejected(
    router: respx.MockRouter, client: AsyncMaestroClient, call: Any
) -> None:
    with pytest.raises(ValidationException) as caught:
        await call(client)

    assert "collection" in str(caught.value)
    assert router.calls.call_count == 0


BAD_CONCURRENCY = ["x", math.nan, math.inf, 0, -1, 1.5, True]

BULK_CALLS = [
    pytest.param(lambda c, n: c.models.get_many(["a"], max_concurrency=n), id="many"),
    pytest.param(
        lambda c, n: c.models.get_versions(PAIRS, max_concurrency=n), id="versions"
    ),
    pytest.param(
        lambda c, n: c.models.set_version_tags(PAIRS, "k", "v", max_concurrency=n),
        id="tags",
    ),
    pytest.param(
        lambda c, n: c.models.transition_versions(PAIRS, "Staging", max_concurrency=n),
        id="transition",
    ),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("value", BAD_CONCURRENCY, ids=repr)
@pytest.mark.parametrize("call", BULK_CALLS)
async def test_bulk_max_concurrency_checked(
    router: respx.MockRouter, client: AsyncMaestroClient, call: Any, value: object
) -> None:
    with pytest.raises(ValidationException, match="max_concurrency"):
        await call(client, value)

    assert router.calls.call_count == 0


@pytest.mark.parametrize("value", BAD_CONCURRENCY, ids=repr)
async def test_bulk_map_max_concurrency_checked(value: object) -> None:
    calls: list[int] = []

    async def record(item: int) -> int:
        calls.append(item)
        return item

    with pytest.raises(ValidationException, match="max_concurrency"):
        await bulk_map(record, [1, 2], max_concurrency=value)  # type: ignore[arg-type]

    assert calls == []


async def test_bulk_map_string_items_rejected() -> None:
    calls: list[str] = []

    async def record(item: str) -> str:
        calls.append(item)
        return item

    with pytest.raises(ValidationException, match="collection"):
        await bulk_map(record, "abc")

    assert calls == []


BAD_POLL_INTERVALS = [None, "x", math.nan, math.inf, -math.inf, 0, -1, True]

WATCH_CALLS = [
    pytest.param(lambda c, p: c.models.watch("m", poll_interval=p), id="models"),
    pytest.param(lambda c, p: c.runs.watch_run("r", poll_interval=p), id="run"),
    pytest.param(lambda c, p: c.runs.watch_metrics("r", poll_interval=p), id="metrics"),
    pytest.param(lambda c, p: c.runs.watch_many(["r"], poll_interval=p), id="many"),
]


@pytest.mark.parametrize("value", BAD_POLL_INTERVALS, ids=repr)
@pytest.mark.parametrize("call", WATCH_CALLS)
async def test_watch_poll_interval_checked(
    router: respx.MockRouter, client: AsyncMaestroClient, call: Any, value: object
) -> None:
    with pytest.raises(ValidationException, match="poll_interval"):
        await first_event(call(client, value))

    assert router.calls.call_count == 0


INVALID_CALLS = [
    # A model name that is empty or only spaces can never exist: MLflow
    # treats it as missing. Without this check the watch would wait forever.
    pytest.param(lambda c: first_event(c.models.watch(name="")), id="watch-empty"),
    pytest.param(lambda c: first_event(c.models.watch(name="  ")), id="watch-blank"),
    pytest.param(lambda c: first_event(c.models.watch(name=5)), id="watch-name-int"),
    pytest.param(
        lambda c: first_event(c.models.watch(filter_string=3)), id="watch-filter"
    ),
    pytest.param(
        lambda c: c.runs.get_metric_history("r", "k", page_size="x").to_list(),
        id="history-page-size-str",
    ),
    pytest.param(
        lambda c: c.runs.get_metric_history("r", "k", page_size=None).to_list(),
        id="history-page-size-none",
    ),
    pytest.param(
        lambda c: c.experiments.create("e", artifact_location=math.nan),
        id="artifact-location-nan",
    ),
    pytest.param(
        lambda c: c.experiments.create("e", artifact_location=""),
        id="artifact-location-empty",
    ),
    pytest.param(
        lambda c: c.experiments.get_or_create("e", artifact_location=5),
        id="artifact-location-int",
    ),
    pytest.param(lambda c: c.experiments.create(""), id="experiment-name-empty"),
    pytest.param(lambda c: c.runs.log_batch("r", metrics=5), id="metrics-int"),
    pytest.param(lambda c: c.runs.log_batch("r", metrics="m"), id="metrics-str"),
]


@pytest.mark.parametrize("call", INVALID_CALLS)
async def test_invalid_argument_before_request(
    router: respx.MockRouter, client: AsyncMaestroClient, call: Any
) -> None:
    with pytest.raises(ValidationException):
        await call(client)

    assert router.calls.call_count == 0


PAGER_CALLS = [
    pytest.param(lambda c: c.models.list(page_token=["x"]), id="list-token-list"),
    pytest.param(lambda c: c.models.list(page_token=5), id="list-token-int"),
    pytest.param(lambda c: c.models.search(page_token={"a"}), id="search-token-set"),
    pytest.param(
        lambda c: c.models.search_versions(page_token=b"x"), id="versions-token-bytes"
    ),
    pytest.param(lambda c: c.models.list(max_results="x"), id="list-max-str"),
    pytest.param(lambda c: c.models.list(page_size="x"), id="list-page-size-str"),
    pytest.param(lambda c: c.runs.search(["1"], max_results=1.5), id="runs-max"),
    pytest.param(lambda c: c.runs.search(["1"], page_size=None), id="runs-page"),
    pytest.param(lambda c: c.experiments.search(max_results="x"), id="exp-max"),
    pytest.param(lambda c: c.logged_models.search(["1"], page_size="x"), id="lm"),
    pytest.param(lambda c: c.webhooks.list(max_results=[1]), id="webhooks-max"),
]


def test_pager_argument_types_checked(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    for param in PAGER_CALLS:
        (make_pager,) = param.values
        with pytest.raises(ValidationException):
            make_pager(client)
        assert router.calls.call_count == 0, param.id


async def test_pager_page_token_checked_in_page(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    pager = client.models.list()

    with pytest.raises(ValidationException, match="page_token"):
        await pager.page(["x"])  # type: ignore[arg-type]

    assert router.calls.call_count == 0


async def test_experiment_name_of_spaces_accepted(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    # MLflow 3.17 stores an experiment named "   ", so reads must reach it.
    route = router.get("/api/2.0/mlflow/experiments/get-by-name").respond(
        404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "none"}
    )

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = await client.experiments.get_by_name("   ")

    assert found is None
    assert route.calls.last.request.url.params["experiment_name"] == "   "
