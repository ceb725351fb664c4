"""Unit tests of the registry sub-client with respx: faults a real server cannot show.

Every request goes to a respx router; nothing leaves the process.
"""

from __future__ import annotations

import email.utils
import logging
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from maestro_ml_async import (
    AlreadyExistsException,
    AsyncMaestroClient,
    AuthenticationException,
    AuthorizationException,
    BulkOperationError,
    Config,
    InvalidParameterException,
    MLflowException,
    ModelNotFoundException,
    ModelVersionNotFoundException,
    NotFoundException,
    RateLimitedException,
    ServerUnavailableException,
    TransportException,
    ValidationException,
)
from maestro_ml_async._exceptions import (
    RegistrationFailedException,
    RegistrationTimeoutException,
)

BASE = "http://127.0.0.1:9"
API = BASE + "/api/2.0/mlflow"
TOKEN = "tok-SECRET-bearer-7f3a"
PASSWORD = "pw-SECRET-basic-91c2"
PROMPT_TAG = {"key": "mlflow.prompt.is_prompt", "value": "true"}


def make_config(**overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "mlflow_uri": BASE,
        "max_retries": 3,
        "retry_backoff_base": 0.001,
        "retry_backoff_max": 0.002,
        "retry_max_elapsed": 10.0,
    }
    settings.update(overrides)
    return Config(**settings)


def model_json(name: str = "m", **extra: Any) -> dict[str, Any]:
    body = {"name": name, "creation_timestamp": 1700000000000, **extra}
    return {"registered_model": body}


def version_json(
    name: str = "m", version: str = "1", status: str = "READY", **extra: Any
) -> dict[str, Any]:
    body = {"name": name, "version": version, "status": status, **extra}
    return {"model_version": body}


def mlflow_error(status: int, code: str, message: str = "failed") -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "message": message})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client(router: respx.MockRouter) -> AsyncIterator[AsyncMaestroClient]:
    async with AsyncMaestroClient(config=make_config()) as maestro:
        yield maestro


# Error mapping ---------------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        mlflow_error(404, "RESOURCE_DOES_NOT_EXIST"),
        ModelNotFoundException,
        "RESOURCE_DOES_NOT_EXIST",
        id="json-404",
    ),
    pytest.param(
        httpx.Response(401, text="You are not authenticated. Please log in."),
        AuthenticationException,
        "UNAUTHENTICATED",
        id="text-401",
    ),
    pytest.param(
        httpx.Response(403, text="Permission denied"),
        AuthorizationException,
        "PERMISSION_DENIED",
        id="text-403",
    ),
    pytest.param(
        httpx.Response(503, text="Service Unavailable: artifacts disabled"),
        ServerUnavailableException,
        "TEMPORARILY_UNAVAILABLE",
        id="text-503",
    ),
    pytest.param(
        httpx.Response(404, content=b""),
        NotFoundException,
        "ENDPOINT_NOT_FOUND",
        id="empty-404",
    ),
    pytest.param(
        httpx.Response(
            405,
            html="<!doctype html><html><title>405 Method Not Allowed</title></html>",
        ),
        MLflowException,
        "ENDPOINT_NOT_FOUND",
        id="html-405",
    ),
    pytest.param(
        mlflow_error(400, "INVALID_PARAMETER_VALUE", "bad filter"),
        ValidationException,
        "INVALID_PARAMETER_VALUE",
        id="json-400-invalid",
    ),
    pytest.param(
        mlflow_error(429, "REQUEST_LIMIT_EXCEEDED"),
        RateLimitedException,
        "REQUEST_LIMIT_EXCEEDED",
        id="json-429",
    ),
    pytest.param(
        mlflow_error(500, "INTERNAL_ERROR", "database locked"),
        MLflowException,
        "INTERNAL_ERROR",
        id="json-500",
    ),
]


@pytest.mark.parametrize(("response", "expected", "code"), ERROR_CASES)
async def test_error_mapping_of_get(
    router: respx.MockRouter,
    client: AsyncMaestroClient,
    response: httpx.Response,
    expected: type[Exception],
    code: str,
) -> None:
    router.get("/registered-models/get").mock(return_value=response)

    with pytest.raises(expected) as caught:
        await client.models.get("m")

    error = caught.value
    assert isinstance(error, MLflowException)
    assert error.status_code == response.status_code
    assert error.error_code == code
    assert error.method == "GET"
    assert error.path == "/api/2.0/mlflow/registered-models/get"
    assert "<html" not in str(error)
    assert "name=" not in str(error)


async def test_version_not_found_mapping(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/model-versions/get").mock(
        return_value=mlflow_error(404, "RESOURCE_DOES_NOT_EXIST")
    )

    with pytest.raises(ModelVersionNotFoundException):
        await client.models.get_version("m", 3)


async def test_unknown_alias_400_maps_to_not_found(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/alias").mock(
        return_value=mlflow_error(
            400,
            "INVALID_PARAMETER_VALUE",
            "Registered model alias nope not found.",
        )
    )

    with pytest.raises(ModelVersionNotFoundException) as caught:
        await client.models.get_version_by_alias("m", "nope")

    assert caught.value.status_code == 400
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


async def test_other_alias_400_stays_invalid(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/alias").mock(
        return_value=mlflow_error(400, "INVALID_PARAMETER_VALUE", "bad request")
    )

    with pytest.raises(InvalidParameterException):
        await client.models.get_version_by_alias("m", "champion")


SQLITE_ALIAS_CONFLICT = (
    "(sqlite3.IntegrityError) UNIQUE constraint failed: "
    "registered_model_aliases.workspace, registered_model_aliases.name, "
    "registered_model_aliases.alias\n[SQL: INSERT INTO registered_model_aliases "
    "(workspace, name, alias, version) VALUES (?, ?, ?, ?)]"
)
POSTGRES_ALIAS_CONFLICT = (
    "(psycopg2.errors.UniqueViolation) duplicate key value violates unique "
    'constraint "registered_model_alias_pk"\nDETAIL:  Key (workspace, name, '
    "alias)=(default, m, champ) already exists."
)
MYSQL_ALIAS_CONFLICT = (
    "(pymysql.err.IntegrityError) (1062, \"Duplicate entry 'default-m-champ' "
    "for key 'registered_model_aliases.PRIMARY'\")"
)

MSSQL_ALIAS_CONFLICT = (
    "(pyodbc.IntegrityError) Violation of PRIMARY KEY constraint "
    "'registered_model_alias_pk'. Cannot insert duplicate key in object "
    "'dbo.registered_model_aliases'."
)


@pytest.mark.parametrize(
    "message",
    [
        SQLITE_ALIAS_CONFLICT,
        POSTGRES_ALIAS_CONFLICT,
        MYSQL_ALIAS_CONFLICT,
        MSSQL_ALIAS_CONFLICT,
    ],
    ids=["sqlite", "postgresql", "mysql", "sql-server"],
)
async def test_set_alias_retries_insert_conflict(
    router: respx.MockRouter, client: AsyncMaestroClient, message: str
) -> None:
    route = router.post("/registered-models/alias").mock(
        side_effect=[
            mlflow_error(400, "BAD_REQUEST", message),
            httpx.Response(200, json={}),
        ]
    )

    await client.models.set_alias("m", "champ", 2)

    assert route.call_count == 2


async def test_set_alias_retry_bounded(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.post("/registered-models/alias").mock(
        return_value=mlflow_error(400, "BAD_REQUEST", SQLITE_ALIAS_CONFLICT)
    )

    with pytest.raises(InvalidParameterException, match="UNIQUE constraint"):
        await client.models.set_alias("m", "champ", 2)

    assert route.call_count == 3


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("BAD_REQUEST", "UNIQUE constraint failed: model_versions.version"),
        ("BAD_REQUEST", "registered_model_aliases: value too long"),
        ("INVALID_PARAMETER_VALUE", SQLITE_ALIAS_CONFLICT),
    ],
    ids=["other-table", "other-error", "other-code"],
)
async def test_set_alias_other_400_not_retried(
    router: respx.MockRouter, client: AsyncMaestroClient, code: str, message: str
) -> None:
    route = router.post("/registered-models/alias").mock(
        return_value=mlflow_error(400, code, message)
    )

    with pytest.raises(InvalidParameterException):
        await client.models.set_alias("m", "champ", 2)

    assert route.call_count == 1


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"api_key": TOKEN}, id="bearer"),
        pytest.param({"username": "alice", "password": PASSWORD}, id="basic"),
    ],
)
async def test_errors_and_logs_hide_credentials(
    router: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    credentials: dict[str, str],
) -> None:
    route = router.get("/registered-models/get").mock(
        side_effect=[
            httpx.Response(503, text="busy"),
            httpx.Response(401, text="You are not authenticated."),
        ]
    )
    caplog.set_level(logging.DEBUG, logger="maestro_ml_async")

    async with AsyncMaestroClient(config=make_config(**credentials)) as maestro:
        with pytest.raises(AuthenticationException) as caught:
            await maestro.models.get("m")
        shown = [str(caught.value), repr(caught.value), repr(maestro.config)]
        shown.append(repr(maestro._http.auth))

    sent = route.calls.last.request.headers["authorization"]
    assert sent.startswith(("Bearer ", "Basic "))
    assert caplog.records, "the request and the retry should be logged"
    shown += [record.getMessage() for record in caplog.records]
    for text in shown:
        assert TOKEN not in text
        assert PASSWORD not in text
        assert sent.split()[1] not in text


# Retries ---------------------------------------------------------------------


async def test_get_retried_on_503(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/get").mock(
        side_effect=[
            httpx.Response(503, text="busy"),
            httpx.Response(503, text="busy"),
            httpx.Response(200, json=model_json()),
        ]
    )

    model = await client.models.get("m")

    assert model.name == "m"
    assert route.call_count == 3


async def test_read_error_retried_for_reads(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/get").mock(
        side_effect=[httpx.ReadError("reset"), httpx.Response(200, json=model_json())]
    )

    assert (await client.models.get("m")).name == "m"
    assert route.call_count == 2


async def test_retry_after_seconds_honoured(
    router: respx.MockRouter,
    client: AsyncMaestroClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = router.get("/registered-models/get").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "0.3"}, text="slow down"),
            httpx.Response(200, json=model_json()),
        ]
    )
    caplog.set_level(logging.INFO, logger="maestro_ml_async")

    started = time.monotonic()
    await client.models.get("m")
    elapsed = time.monotonic() - started

    assert route.call_count == 2
    assert elapsed >= 0.3
    assert any("waiting 0.30 s" in r.getMessage() for r in caplog.records)


async def test_retry_after_http_date_honoured(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    route = router.get("/registered-models/get").mock(
        side_effect=[
            httpx.Response(503, headers={"Retry-After": when}, text="maintenance"),
            httpx.Response(200, json=model_json()),
        ]
    )

    started = time.monotonic()
    await client.models.get("m")
    elapsed = time.monotonic() - started

    assert route.call_count == 2
    # The date has whole-second resolution, so the wait is between 1 and 2 s.
    assert elapsed >= 0.9


async def test_persistent_503_gives_up(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/get").mock(
        return_value=httpx.Response(503, text="down")
    )

    with pytest.raises(ServerUnavailableException):
        await client.models.get("m")

    assert route.call_count == 4


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(httpx.ReadError("connection reset"), id="read-error"),
        pytest.param(httpx.Response(500, text="oops"), id="http-500"),
        pytest.param(httpx.Response(503, text="busy"), id="http-503"),
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
    ],
)
async def test_create_version_not_retried_once_sent(
    router: respx.MockRouter,
    client: AsyncMaestroClient,
    fault: httpx.Response | Exception,
) -> None:
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json())
    )
    create = router.post("/model-versions/create")
    if isinstance(fault, Exception):
        create.mock(side_effect=fault)
    else:
        create.mock(return_value=fault)

    with pytest.raises(MLflowException) as caught:
        await client.models.create_version("m", "s3://bucket/model")

    assert create.call_count == 1
    if isinstance(fault, Exception):
        assert isinstance(caught.value, TransportException)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(httpx.Response(429, text="later"), id="http-429"),
    ],
)
async def test_create_version_retried_when_unsent(
    router: respx.MockRouter,
    client: AsyncMaestroClient,
    fault: httpx.Response | Exception,
) -> None:
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json())
    )
    create = router.post("/model-versions/create").mock(
        side_effect=[fault, httpx.Response(200, json=version_json())]
    )

    version = await client.models.create_version("m", "s3://bucket/model")

    assert version.version == "1"
    assert create.call_count == 2


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(httpx.ReadError("reset after send"), id="read-error"),
    ],
)
async def test_model_create_settled_by_read_back(
    router: respx.MockRouter,
    client: AsyncMaestroClient,
    fault: Exception,
) -> None:
    create = router.post("/registered-models/create").mock(
        side_effect=[fault, mlflow_error(400, "RESOURCE_ALREADY_EXISTS")]
    )
    stored = model_json(description="d", tags=[{"key": "k", "value": "v"}])
    get = router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=stored)
    )

    model = await client.models.create("m", description="d", tags={"k": "v"})

    assert model.tags == {"k": "v"}
    assert create.call_count == 2
    assert get.call_count == 1


async def test_model_create_read_back_mismatch_raises(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.post("/registered-models/create").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            mlflow_error(400, "RESOURCE_ALREADY_EXISTS"),
        ]
    )
    other = model_json(description="someone else's")
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=other)
    )

    with pytest.raises(AlreadyExistsException):
        await client.models.create("m", description="mine")


async def test_model_create_conflict_without_retry_raises(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.post("/registered-models/create").mock(
        return_value=mlflow_error(400, "RESOURCE_ALREADY_EXISTS")
    )
    get = router.get("/registered-models/get")

    with pytest.raises(AlreadyExistsException):
        await client.models.create("m")

    assert get.call_count == 0


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(200, content=b""), id="empty"),
        pytest.param(httpx.Response(200, json={}), id="no-field"),
        pytest.param(httpx.Response(200, html="<html>login</html>"), id="html"),
    ],
)
async def test_model_create_invalid_success_body(
    router: respx.MockRouter, client: AsyncMaestroClient, response: httpx.Response
) -> None:
    router.post("/registered-models/create").mock(return_value=response)

    with pytest.raises(MLflowException) as caught:
        await client.models.create("m")

    assert caught.value.error_code == "INVALID_RESPONSE"
    assert caught.value.status_code == 200
    assert caught.value.path == "/api/2.0/mlflow/registered-models/create"


@pytest.mark.parametrize("body", [{}, {"artifact_uri": None}, {"artifact_uri": ""}])
async def test_download_uri_missing_is_invalid_response(
    router: respx.MockRouter, client: AsyncMaestroClient, body: dict[str, Any]
) -> None:
    router.get("/model-versions/get").mock(
        return_value=httpx.Response(200, json=version_json())
    )
    router.get("/model-versions/get-download-uri").mock(
        return_value=httpx.Response(200, json=body)
    )

    with pytest.raises(MLflowException) as caught:
        await client.models.get_version_download_uri("m", 1)

    assert caught.value.error_code == "INVALID_RESPONSE"
    assert "artifact_uri" in str(caught.value)


@pytest.mark.parametrize(
    ("method", "endpoint", "body", "call"),
    [
        pytest.param(
            "GET",
            "registered-models/get",
            {"registered_model": []},
            lambda c: c.models.get("m"),
            id="model-list",
        ),
        pytest.param(
            "GET",
            "registered-models/get",
            {"registered_model": {"name": "m", "aliases": "x"}},
            lambda c: c.models.get("m"),
            id="model-aliases",
        ),
        pytest.param(
            "POST",
            "registered-models/create",
            {"registered_model": "m"},
            lambda c: c.models.create("m"),
            id="create-string",
        ),
        pytest.param(
            "GET",
            "model-versions/get",
            {"model_version": {"name": "m", "version": "1", "tags": 5}},
            lambda c: c.models.get_version("m", 1),
            id="version-tags",
        ),
        pytest.param(
            "GET",
            "registered-models/search",
            {"registered_models": {"name": "m"}},
            lambda c: c.models.search(max_results=5),
            id="search-not-list",
        ),
        pytest.param(
            "GET",
            "model-versions/search",
            {"model_versions": [None]},
            lambda c: c.models.search_versions("name = 'm'", max_results=5),
            id="version-search-null-item",
        ),
    ],
)
async def test_wrong_field_type_is_invalid_response(
    router: respx.MockRouter,
    client: AsyncMaestroClient,
    method: str,
    endpoint: str,
    body: dict[str, Any],
    call: Any,
) -> None:
    router.route(method=method, path=f"/{endpoint}").mock(
        return_value=httpx.Response(200, json=body)
    )

    with pytest.raises(MLflowException) as caught:
        await call(client)

    assert caught.value.error_code == "INVALID_RESPONSE"
    assert caught.value.status_code == 200
    assert caught.value.path == f"/api/2.0/mlflow/{endpoint}"
    assert repr(next(iter(body))) in str(caught.value)


# Polling of a new version ----------------------------------------------------


async def test_create_version_polls_until_ready(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json())
    )
    router.post("/model-versions/create").mock(
        return_value=httpx.Response(
            200, json=version_json(status="PENDING_REGISTRATION")
        )
    )
    poll = router.get("/model-versions/get").mock(
        side_effect=[
            httpx.Response(200, json=version_json(status="PENDING_REGISTRATION")),
            httpx.Response(200, json=version_json(status="READY")),
        ]
    )

    version = await client.models.create_version("m", "s3://b/m", wait_timeout=5)

    assert version.status == "READY"
    assert poll.call_count == 2


async def test_create_version_failed_registration(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json())
    )
    router.post("/model-versions/create").mock(
        return_value=httpx.Response(
            200, json=version_json(status="PENDING_REGISTRATION")
        )
    )
    failed = version_json(status="FAILED_REGISTRATION", status_message="copy failed")
    router.get("/model-versions/get").mock(
        return_value=httpx.Response(200, json=failed)
    )

    with pytest.raises(RegistrationFailedException) as caught:
        await client.models.create_version("m", "s3://b/m", wait_timeout=5)

    assert "copy failed" in str(caught.value)
    assert caught.value.version == "1"


async def test_create_version_times_out(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json())
    )
    pending = version_json(status="PENDING_REGISTRATION")
    router.post("/model-versions/create").mock(
        return_value=httpx.Response(200, json=pending)
    )
    router.get("/model-versions/get").mock(
        return_value=httpx.Response(200, json=pending)
    )

    started = time.monotonic()
    with pytest.raises(RegistrationTimeoutException) as caught:
        await client.models.create_version("m", "s3://b/m", wait_timeout=0.2)

    assert time.monotonic() - started < 1.0
    assert caught.value.status == "PENDING_REGISTRATION"
    assert isinstance(caught.value, TimeoutError)


# Validation before any request -----------------------------------------------

INVALID_CALLS = [
    pytest.param(lambda c: c.models.get(""), id="empty-name"),
    pytest.param(lambda c: c.models.get("   "), id="blank-name"),
    pytest.param(lambda c: c.models.get(None), id="none-name"),
    pytest.param(lambda c: c.models.get_version("m", 0), id="version-zero"),
    pytest.param(lambda c: c.models.get_version("m", -1), id="version-negative"),
    pytest.param(lambda c: c.models.get_version("m", "abc"), id="version-text"),
    pytest.param(lambda c: c.models.get_version("m", True), id="version-bool"),
    pytest.param(lambda c: c.models.get_version("m", "1.5"), id="version-float"),
    pytest.param(lambda c: c.models.set_alias("m", "latest", 1), id="alias-latest"),
    pytest.param(lambda c: c.models.set_alias("m", "LATEST", 1), id="alias-latest-up"),
    pytest.param(lambda c: c.models.set_alias("m", "v3", 1), id="alias-v-number"),
    pytest.param(lambda c: c.models.set_alias("m", "a b", 1), id="alias-space"),
    pytest.param(lambda c: c.models.set_alias("m", "a" * 256, 1), id="alias-long"),
    pytest.param(lambda c: c.models.get_version_by_alias("m", ""), id="alias-empty"),
    pytest.param(lambda c: c.models.set_tag("m", "k" * 251, "v"), id="tag-key-long"),
    pytest.param(lambda c: c.models.set_tag("m", "", "v"), id="tag-key-empty"),
    pytest.param(
        lambda c: c.models.set_tag("m", "k", "v" * 100_001), id="tag-value-long"
    ),
    pytest.param(lambda c: c.models.set_tag("m", "k", object()), id="tag-value-type"),
    pytest.param(
        lambda c: c.models.set_version_tag("m", 1, "mlflow.prompt.is_prompt", "true"),
        id="prompt-tag",
    ),
    pytest.param(lambda c: c.models.create("a/b"), id="create-slash"),
    pytest.param(lambda c: c.models.create("a:b"), id="create-colon"),
    pytest.param(lambda c: c.models.create(".."), id="create-dotdot"),
    pytest.param(lambda c: c.models.create("m", tags={"k": [1]}), id="create-tags"),
    pytest.param(lambda c: c.models.rename("m", "x/y"), id="rename-slash"),
    pytest.param(lambda c: c.models.create_version("m", ""), id="empty-source"),
    pytest.param(
        lambda c: c.models.transition_version_stage("m", 1, "Canary"), id="stage"
    ),
    pytest.param(lambda c: c.models.get_latest_versions("m", ["prod"]), id="stages"),
    pytest.param(lambda c: c.models.get_many(["a", ""]), id="bulk-names"),
    pytest.param(lambda c: c.models.get_versions([("a", 1), ("b", 0)]), id="pairs"),
    pytest.param(lambda c: c.models.transition_versions([("a", 1)], "x"), id="bulk-st"),
    pytest.param(lambda c: c.models.register("", "model", "m"), id="register-run"),
    pytest.param(lambda c: c.models.register("r", "/", "m"), id="register-path"),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("call", INVALID_CALLS)
async def test_validation_before_request(
    router: respx.MockRouter, client: AsyncMaestroClient, call: Any
) -> None:
    with pytest.raises(ValidationException):
        await call(client)

    assert router.calls.call_count == 0


@pytest.mark.parametrize(
    "make_pager",
    [
        pytest.param(lambda c: c.models.list(max_results=0), id="list-zero"),
        pytest.param(lambda c: c.models.search(page_size=1001), id="page-over"),
        pytest.param(lambda c: c.models.search(page_size=0), id="page-zero"),
        pytest.param(lambda c: c.models.search(filter_string=3), id="filter-type"),
        pytest.param(lambda c: c.models.search(order_by=[""]), id="order-empty"),
        pytest.param(
            lambda c: c.models.search_versions(page_size=200_001), id="versions-over"
        ),
        pytest.param(lambda c: c.models.search_versions(max_results=-5), id="neg"),
    ],
)
def test_pager_arguments_checked_at_call(
    router: respx.MockRouter, client: AsyncMaestroClient, make_pager: Any
) -> None:
    with pytest.raises(ValidationException):
        make_pager(client)

    assert router.calls.call_count == 0


# Names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["with space", "trailing ", "a+b", "a#b", "100%", "a/b", "näme ✓", "a&b=c"]
)
async def test_names_travel_in_query_exactly(
    router: respx.MockRouter, client: AsyncMaestroClient, name: str
) -> None:
    route = router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json(name))
    )

    model = await client.models.get(name)

    request = route.calls.last.request
    assert request.url.path == "/api/2.0/mlflow/registered-models/get"
    assert request.url.params["name"] == name
    assert model.name == name


async def test_delete_sends_name_in_json_body(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    name = "tricky name/+#% "
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json(name))
    )
    route = router.delete("/registered-models/delete").mock(
        return_value=httpx.Response(200, json={})
    )

    await client.models.delete(name)

    request = route.calls.last.request
    assert request.url.path == "/api/2.0/mlflow/registered-models/delete"
    assert request.url.query == b""
    assert httpx.Response(200, content=request.content).json() == {"name": name}


# Pagination ------------------------------------------------------------------


def search_page(names: list[str], token: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"registered_models": [{"name": n} for n in names]}
    if token is not None:
        body["next_page_token"] = token
    return httpx.Response(200, json=body)


async def test_empty_token_ends_pages(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/search").mock(
        return_value=search_page(["a", "b"], token="")
    )

    models = await client.models.list()

    assert [m.name for m in models] == ["a", "b"]
    assert route.call_count == 1


async def test_missing_token_ends_pages(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/search").mock(
        side_effect=[search_page(["a"], "t1"), search_page(["b"])]
    )

    names = [model.name async for model in client.models.list()]

    assert names == ["a", "b"]
    assert route.call_count == 2
    assert route.calls[1].request.url.params["page_token"] == "t1"


async def test_repeated_token_raises(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/search").mock(
        side_effect=[
            search_page(["a"], "same"),
            search_page(["b"], "same"),
            search_page(["c"], "same"),
        ]
    )

    with pytest.raises(MLflowException) as caught:
        await client.models.list()

    assert caught.value.error_code == "REPEATED_PAGE_TOKEN"


async def test_model_artifacts_repeated_token_raises(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    run = {"info": {"run_id": "r1", "artifact_uri": "mlflow-artifacts:/0/r1/artifacts"}}
    router.get("/model-versions/get").mock(
        return_value=httpx.Response(
            200,
            json=version_json(
                run_id="r1", source="mlflow-artifacts:/0/r1/artifacts/model"
            ),
        )
    )
    router.get("/runs/get").mock(return_value=httpx.Response(200, json={"run": run}))
    page = {"files": [{"path": "model/MLmodel"}], "next_page_token": "again"}
    listing = router.get("/artifacts/list").mock(
        return_value=httpx.Response(200, json=page)
    )

    with pytest.raises(MLflowException) as caught:
        await client.models.list_model_artifacts("m", 1)

    assert caught.value.error_code == "REPEATED_PAGE_TOKEN"
    assert listing.call_count == 2


async def test_register_skips_failed_artifact_check(
    router: respx.MockRouter,
    client: AsyncMaestroClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = {"info": {"run_id": "r1", "artifact_uri": "s3://bucket/0/r1/artifacts"}}
    router.get("/runs/get").mock(return_value=httpx.Response(200, json={"run": run}))
    router.get("/registered-models/get").mock(
        return_value=mlflow_error(404, "RESOURCE_DOES_NOT_EXIST")
    )
    listing = router.get("/artifacts/list").mock(
        return_value=mlflow_error(500, "INTERNAL_ERROR", "no credentials for s3")
    )
    router.post("/registered-models/create").mock(
        return_value=httpx.Response(200, json=model_json())
    )
    router.post("/model-versions/create").mock(
        return_value=httpx.Response(200, json=version_json(run_id="r1"))
    )

    with caplog.at_level(logging.WARNING, logger="maestro_ml_async"):
        version = await client.models.register("r1", "model", "m")

    assert version.version == "1"
    assert listing.call_count >= 1
    assert "without checking it" in caplog.text
    assert "no credentials for s3" in caplog.text


async def test_max_results_caps_across_pages(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/search").mock(
        side_effect=[
            search_page(["a", "b"], "t1"),
            search_page(["c", "d"], "t2"),
            search_page(["e", "f"], "t3"),
            search_page(["g"]),
        ]
    )

    models = await client.models.search(max_results=5, page_size=2)

    assert [m.name for m in models] == ["a", "b", "c", "d", "e"]
    assert route.call_count == 3
    assert route.calls[0].request.url.params["max_results"] == "2"


async def test_page_size_shrinks_to_max_results(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/search").mock(
        return_value=search_page(["a", "b", "c"], "more")
    )

    models = await client.models.list(max_results=3)

    assert len(models) == 3
    assert route.call_count == 1
    assert route.calls[0].request.url.params["max_results"] == "3"


async def test_single_page_with_token(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/search").mock(
        return_value=search_page(["x", "y"], "next-token")
    )

    page = await client.models.search("name LIKE 'x%'", page_size=2).page("abc")

    assert [m.name for m in page.items] == ["x", "y"]
    assert page.next_page_token == "next-token"
    assert page.has_next
    assert route.call_count == 1
    params = route.calls.last.request.url.params
    assert params["page_token"] == "abc"
    assert params["max_results"] == "2"


async def test_order_by_sent_as_repeated_keys(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/search").mock(return_value=search_page([]))

    await client.models.search(order_by=["last_updated_timestamp DESC", "name ASC"])

    params = route.calls.last.request.url.params
    assert params.get_list("order_by") == ["last_updated_timestamp DESC", "name ASC"]


# Stages ----------------------------------------------------------------------


async def test_stage_canonical_both_ways(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.post("/model-versions/transition-stage").mock(
        return_value=httpx.Response(200, json=version_json(current_stage="production"))
    )

    with pytest.warns(DeprecationWarning):
        version = await client.models.transition_version_stage(
            "m", "1", " PRODUCTION ", archive_existing_versions=True
        )

    sent = httpx.Response(200, content=route.calls.last.request.content).json()
    assert sent["stage"] == "Production"
    assert sent["archive_existing_versions"] is True
    assert version.current_stage == "Production"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda c: c.models.transition_version_stage("m", 1, "staging"),
            id="transition",
        ),
        pytest.param(
            lambda c: c.models.get_latest_versions("m", ["staging"]), id="latest"
        ),
        pytest.param(
            lambda c: c.models.transition_versions([("m", 1)], "Archived"),
            id="bulk",
        ),
    ],
)
async def test_stage_methods_warn_at_caller(
    router: respx.MockRouter, client: AsyncMaestroClient, call: Any
) -> None:
    router.post("/model-versions/transition-stage").mock(
        return_value=httpx.Response(200, json=version_json(current_stage="Staging"))
    )
    router.get("/registered-models/get-latest-versions").mock(
        return_value=httpx.Response(200, json={"model_versions": []})
    )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await call(client)

    deprecations = [w for w in caught if w.category is DeprecationWarning]
    assert len(deprecations) == 1
    assert deprecations[0].filename == __file__
    assert "deprecated" in str(deprecations[0].message)


async def test_latest_versions_sends_canonical_stages(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.get("/registered-models/get-latest-versions").mock(
        return_value=httpx.Response(
            200,
            json={
                "model_versions": [
                    version_json(current_stage="ARCHIVED")["model_version"]
                ]
            },
        )
    )

    with pytest.warns(DeprecationWarning):
        versions = await client.models.get_latest_versions("m", ["none", "archived"])

    assert route.calls.last.request.url.params.get_list("stages") == [
        "None",
        "Archived",
    ]
    assert versions[0].current_stage == "Archived"


# Prompts ---------------------------------------------------------------------

PROMPT_CLAUSE = "tags.`mlflow.prompt.is_prompt` != 'true'"


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (None, PROMPT_CLAUSE),
        ("name LIKE 'x%'", f"name LIKE 'x%' AND {PROMPT_CLAUSE}"),
        (
            "tags.`mlflow.prompt.is_prompt` = 'true'",
            "tags.`mlflow.prompt.is_prompt` = 'true'",
        ),
    ],
)
async def test_search_filter_hides_prompts(
    router: respx.MockRouter,
    client: AsyncMaestroClient,
    given: str | None,
    sent: str,
) -> None:
    models = router.get("/registered-models/search").mock(return_value=search_page([]))
    versions = router.get("/model-versions/search").mock(
        return_value=httpx.Response(200, json={})
    )

    await client.models.search(given)
    await client.models.search_versions(given)

    assert models.calls.last.request.url.params["filter"] == sent
    assert versions.calls.last.request.url.params["filter"] == sent


async def test_search_drops_prompt_results(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    body = {
        "registered_models": [{"name": "model"}, {"name": "p", "tags": [PROMPT_TAG]}]
    }
    router.get("/registered-models/search").mock(
        return_value=httpx.Response(200, json=body)
    )

    assert [m.name for m in await client.models.list()] == ["model"]


async def test_search_naming_prompt_tag_keeps_prompts(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    body = {"registered_models": [{"name": "p", "tags": [PROMPT_TAG]}]}
    router.get("/registered-models/search").mock(
        return_value=httpx.Response(200, json=body)
    )
    versions = {"model_versions": [{"name": "p", "version": "1", "tags": [PROMPT_TAG]}]}
    router.get("/model-versions/search").mock(
        return_value=httpx.Response(200, json=versions)
    )
    prompt_filter = "tags.`mlflow.prompt.is_prompt` = 'true'"

    models = await client.models.search(prompt_filter)
    found_versions = await client.models.search_versions(prompt_filter)

    assert [m.name for m in models] == ["p"]
    assert [v.name for v in found_versions] == ["p"]


async def test_get_of_prompt_raises_not_found(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json("p", tags=[PROMPT_TAG]))
    )
    router.get("/model-versions/get").mock(
        return_value=httpx.Response(200, json=version_json("p", tags=[PROMPT_TAG]))
    )

    with pytest.raises(ModelNotFoundException):
        await client.models.get("p")
    with pytest.raises(ModelVersionNotFoundException):
        await client.models.get_version("p", 1)


async def test_destructive_write_on_prompt_rejected(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json("p", tags=[PROMPT_TAG]))
    )
    delete = router.delete("/registered-models/delete")
    create = router.post("/model-versions/create")

    with pytest.raises(ModelNotFoundException):
        await client.models.delete("p")
    with pytest.raises(ModelNotFoundException):
        await client.models.create_version("p", "s3://b/x")

    assert delete.call_count == 0
    assert create.call_count == 0


async def test_tag_write_sends_one_request(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.post("/registered-models/set-tag").mock(
        return_value=httpx.Response(200, json={})
    )

    await client.models.set_tag("m", "k", 5)

    assert router.calls.call_count == 1
    sent = httpx.Response(200, content=route.calls.last.request.content).json()
    assert sent == {"name": "m", "key": "k", "value": "5"}


# Bulk helpers ----------------------------------------------------------------


async def test_get_many_keeps_order_and_errors(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        name = request.url.params["name"]
        if name == "missing":
            return mlflow_error(404, "RESOURCE_DOES_NOT_EXIST")
        return httpx.Response(200, json=model_json(name))

    router.get("/registered-models/get").mock(side_effect=answer)
    progress: list[tuple[int, int]] = []

    results = await client.models.get_many(
        ["a", "missing", "c"],
        on_progress=lambda done, total: progress.append((done, total)),
    )

    assert [getattr(r, "name", None) for r in results] == ["a", None, "c"]
    assert isinstance(results[1], ModelNotFoundException)
    assert progress[-1] == (3, 3)

    with pytest.raises(BulkOperationError) as caught:
        await client.models.get_many(["a", "missing"], raise_on_error=True)
    assert len(caught.value.results) == 2


async def test_set_version_tags_bulk(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    route = router.post("/model-versions/set-tag").mock(
        return_value=httpx.Response(200, json={})
    )

    results = await client.models.set_version_tags(
        [("a", 1), ("a", "2"), ("b", 3)], "validated", "yes"
    )

    assert results.ok
    sent = sorted(
        httpx.Response(200, content=c.request.content).json()["version"]
        for c in route.calls
    )
    assert sent == ["1", "2", "3"]


# Data models -----------------------------------------------------------------


def test_model_parses_rest_json() -> None:
    from maestro_ml_async.types.models import Model

    model = Model.model_validate(
        {
            "name": "m",
            "creation_timestamp": 1700000000123,
            "last_updated_timestamp": "1700000000999",
            "description": None,
            "user_id": "",
            "tags": [{"key": "a", "value": "1"}, {"key": "empty"}],
            "aliases": [{"alias": "prod", "version": "2"}],
            "latest_versions": [
                {"name": "m", "version": "2", "current_stage": "Production"},
                {"name": "m", "version": "10", "current_stage": "Staging"},
                {"name": "m", "version": "9", "current_stage": "Staging"},
            ],
            "deployment_job_id": "added-by-a-newer-server",
        }
    )

    assert model.tags == {"a": "1", "empty": ""}
    assert model.aliases == {"prod": "2"}
    assert model.description == ""
    assert model.user_id is None
    assert model.creation_timestamp is not None
    assert model.creation_timestamp.tzinfo is not None
    assert model.creation_timestamp.microsecond == 123000
    assert model.latest_version is not None
    assert model.latest_version.version == "10"
    assert model.production_version is not None
    assert model.production_version.version == "2"
    assert model.staging_version is not None
    assert model.staging_version.version == "10"
    assert Model(name="empty").latest_version is None
    assert Model(name="empty").production_version is None


def test_registry_nulls_mean_defaults() -> None:
    from maestro_ml_async.types.models import Model, ModelVersion

    # A gateway or another server of MLflow's REST API may send null for empty
    # fields.
    version = ModelVersion.model_validate(
        {
            "name": "m",
            "version": "2",
            "aliases": None,
            "tags": None,
            "status": None,
            "current_stage": None,
            "description": None,
        }
    )
    model = Model.model_validate(
        {"name": "m", "aliases": None, "latest_versions": None, "tags": None}
    )

    assert version.aliases == []
    assert version.tags == {}
    assert version.status == "READY"
    assert version.current_stage == "None"
    assert model.latest_versions == []
    assert model.aliases == {}
    with pytest.raises(ValueError, match="name"):
        Model.model_validate({"name": None})


@pytest.mark.parametrize("sent", [None, "", True, 1.5, "v2", "two"])
async def test_invalid_version_number_rejected(
    router: respx.MockRouter, client: AsyncMaestroClient, sent: object
) -> None:
    router.get("/model-versions/get").mock(
        return_value=httpx.Response(200, json=version_json(version=sent))  # type: ignore[arg-type]
    )

    with pytest.raises(MLflowException) as caught:
        await client.models.get_version("m", 1)

    assert caught.value.error_code == "INVALID_RESPONSE"
    assert "version" in str(caught.value)


@pytest.mark.parametrize(("sent", "parsed"), [(7, "7"), (7.0, "7"), ("07", "7")])
def test_numeric_versions_normalised(sent: object, parsed: str) -> None:
    from maestro_ml_async.types.models import ModelVersion

    version = ModelVersion.model_validate({"name": "m", "version": sent})

    assert version.version == parsed
    assert version.version_number == int(parsed)


def test_version_parses_rest_json() -> None:
    from maestro_ml_async.types.models import ModelVersion

    version = ModelVersion.model_validate(
        {
            "name": "m",
            "version": 3,
            "current_stage": "archived",
            "run_id": "",
            "run_link": "",
            "aliases": ["a", "b"],
            "tags": {"k": 1},
            "model_id": "m-123",
        }
    )

    assert version.version == "3"
    assert version.version_number == 3
    assert version.current_stage == "Archived"
    assert version.run_id is None
    assert version.aliases == ["a", "b"]
    assert version.tags == {"k": "1"}
    assert ModelVersion(name="m", version="1", current_stage=None).current_stage == (
        "None"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"name": "m", "tags": "not-a-list"},
        {"name": "m", "tags": [{"value": "no key"}]},
        {"name": "m", "aliases": "x"},
        {"name": "m", "aliases": [{"version": "1"}]},
        {"name": "m", "creation_timestamp": [1]},
    ],
)
def test_model_rejects_malformed_json(body: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from maestro_ml_async.types.models import Model

    with pytest.raises(ValidationError):
        Model.model_validate(body)


def test_signature_parses_mlmodel_strings() -> None:
    from pydantic import ValidationError

    from maestro_ml_async.types.models import ModelSignature

    signature = ModelSignature.model_validate(
        {
            "inputs": '[{"type": "double", "name": "x"}, {"type": "long"}]',
            "outputs": [{"type": "double", "name": "y"}],
            "params": "",
        }
    )

    assert signature.input_names == ["x"]
    assert signature.output_names == ["y"]
    assert signature.params is None
    with pytest.raises(ValidationError):
        ModelSignature.model_validate({"inputs": "[not json"})
    with pytest.raises(ValidationError):
        ModelSignature.model_validate({"inputs": '{"type": "object"}'})


def test_metrics_from_run() -> None:
    from maestro_ml_async.types.models import ModelMetrics

    run = {
        "info": {"run_uuid": "abc"},
        "data": {
            "metrics": [
                {"key": "auc", "value": 0.9, "step": 4, "timestamp": 1700000000000},
                {"key": "loss", "value": 0.1},
            ],
            "params": [{"key": "lr", "value": "0.1"}],
        },
    }

    metrics = ModelMetrics.from_run("m", "1", run)

    assert metrics.run_id == "abc"
    assert metrics.metrics == {"auc": 0.9, "loss": 0.1}
    assert metrics.steps == {"auc": 4, "loss": 0}
    assert set(metrics.timestamps) == {"auc"}
    assert metrics.params == {"lr": "0.1"}


async def test_retried_delete_settles_not_found(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/get").mock(
        return_value=httpx.Response(200, json=model_json())
    )
    route = router.delete("/registered-models/delete").mock(
        side_effect=[
            httpx.ReadError("reset after the delete ran"),
            mlflow_error(404, "RESOURCE_DOES_NOT_EXIST"),
        ]
    )

    await client.models.delete("m")

    assert route.call_count == 2


async def test_delete_of_missing_version_raises(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/model-versions/get").mock(
        return_value=httpx.Response(200, json=version_json())
    )
    router.delete("/model-versions/delete").mock(
        return_value=mlflow_error(404, "RESOURCE_DOES_NOT_EXIST")
    )

    with pytest.raises(ModelVersionNotFoundException):
        await client.models.delete_version("m", 1)


async def test_cancelled_bulk_leaves_no_tasks(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    import asyncio

    started = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.sleep(30)
        return httpx.Response(200, json=model_json())

    router.get("/registered-models/get").mock(side_effect=hang)
    before = asyncio.all_tasks()

    bulk = asyncio.create_task(client.models.get_many([f"m{i}" for i in range(20)]))
    await asyncio.wait_for(started.wait(), timeout=5)
    bulk.cancel()
    with pytest.raises(asyncio.CancelledError):
        await bulk

    assert asyncio.all_tasks() - before == set()


async def test_bare_404_is_not_a_missing_model(
    router: respx.MockRouter, client: AsyncMaestroClient
) -> None:
    router.get("/registered-models/get").mock(return_value=httpx.Response(404))

    with pytest.raises(NotFoundException) as caught:
        await client.models.get("m")

    assert not isinstance(caught.value, ModelNotFoundException)
    assert "mlflow_uri" in str(caught.value)
