"""Webhooks: the SDK against real servers, and delivery verification.

MLflow 3.17 rejects webhook URLs that are not ``https`` or that resolve to a
private or loopback address. The session's shared server runs with those
defaults, so the end-to-end tests start their own server with
``MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https`` and
``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true`` and a receiver on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from aiohttp import web

from maestro_ml_async import (
    AsyncMaestroClient,
    InvalidParameterException,
    NotFoundException,
    ValidationException,
)
from maestro_ml_async.resources.webhooks import (
    WebhookVerificationError,
    parse_webhook_delivery,
    sign_webhook_payload,
    verify_webhook_signature,
)
from maestro_ml_async.testing.mlflow_server import LocalMlflowServer, free_port
from maestro_ml_async.types.events import RegistryEventType
from maestro_ml_async.types.webhooks import WebhookEvent, WebhookStatus

SECRET = "s3cr3t-for-tests"
WEBHOOK_ENV = {
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",
}


@pytest.fixture(scope="module")
def webhook_server_url() -> Iterator[str]:
    """A server of its own that may deliver to 127.0.0.1 over http."""
    saved = {key: os.environ.get(key) for key in WEBHOOK_ENV}
    os.environ.update(WEBHOOK_ENV)
    try:
        server = LocalMlflowServer().start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield server.url
    finally:
        server.stop()


class Receiver:
    """An aiohttp endpoint on 127.0.0.1 that records deliveries."""

    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await self.deliveries.put((dict(request.headers), body))
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.fixture
async def hooks_client(webhook_server_url: str) -> AsyncIterator[AsyncMaestroClient]:
    async with AsyncMaestroClient(mlflow_uri=webhook_server_url, max_retries=2) as c:
        yield c


async def test_server_test_delivery_verifies(
    hooks_client: AsyncMaestroClient, receiver: Receiver, unique: str
) -> None:
    webhook = await hooks_client.webhooks.create(
        f"hook-{unique}",
        receiver.url,
        ["model_version.created", ("model_version_alias", "created")],
        description="test hook",
        secret=SECRET,
    )
    assert webhook.status is WebhookStatus.ACTIVE
    assert "secret" not in webhook.model_dump()

    result = await hooks_client.webhooks.test(webhook.webhook_id)
    assert result.success, result.error_message
    assert result.response_status == 200
    headers, body = await asyncio.wait_for(receiver.deliveries.get(), 10)
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify_webhook_signature(
        SECRET,
        lowered["x-mlflow-delivery-id"],
        lowered["x-mlflow-timestamp"],
        body,
        lowered["x-mlflow-signature"],
    )
    assert not verify_webhook_signature(
        "wrong",
        lowered["x-mlflow-delivery-id"],
        lowered["x-mlflow-timestamp"],
        body,
        lowered["x-mlflow-signature"],
    )
    event = parse_webhook_delivery(headers, body, SECRET)
    assert event.type is RegistryEventType.VERSION_CREATED
    assert event.source == "webhook"
    assert event.model_name

    alias_result = await hooks_client.webhooks.test(
        webhook.webhook_id, "model_version_alias.created"
    )
    assert alias_result.success
    headers, body = await asyncio.wait_for(receiver.deliveries.get(), 10)
    alias_event = parse_webhook_delivery(headers, body, SECRET)
    assert alias_event.type is RegistryEventType.ALIAS_SET
    assert alias_event.key


async def test_real_event_delivered_and_parsed(
    hooks_client: AsyncMaestroClient, receiver: Receiver, unique: str
) -> None:
    webhook = await hooks_client.webhooks.create(
        f"live-{unique}", receiver.url, ["registered_model.created"], secret=SECRET
    )
    name = f"hooked-{unique}"
    await hooks_client._mlflow.call(
        "POST", "registered-models/create", json={"name": name}
    )
    with anyio.fail_after(20):
        while True:
            headers, body = await receiver.deliveries.get()
            event = parse_webhook_delivery(headers, body, SECRET)
            if event.model_name == name:
                break
    assert event.type is RegistryEventType.MODEL_CREATED
    await hooks_client.webhooks.delete(webhook.webhook_id)


async def test_webhook_crud(hooks_client: AsyncMaestroClient, unique: str) -> None:
    created = [
        await hooks_client.webhooks.create(
            f"crud-{unique}-{i}",
            "http://127.0.0.1:9/hook",
            ["registered_model.created"],
        )
        for i in range(3)
    ]
    listed = [w async for w in hooks_client.webhooks.list(page_size=1)]
    assert {w.webhook_id for w in created} <= {w.webhook_id for w in listed}
    first = created[0]
    fetched = await hooks_client.webhooks.get(first.webhook_id)
    assert fetched.name == first.name
    assert fetched.events == [WebhookEvent.parse("registered_model.created")]
    updated = await hooks_client.webhooks.update(
        first.webhook_id,
        name=f"renamed-{unique}",
        status=WebhookStatus.DISABLED,
        events=["model_version_tag.set"],
    )
    assert updated.name == f"renamed-{unique}"
    assert updated.status is WebhookStatus.DISABLED
    assert [str(e) for e in updated.events] == ["model_version_tag.set"]
    for webhook in created:
        await hooks_client.webhooks.delete(webhook.webhook_id)
    with pytest.raises(NotFoundException):
        await hooks_client.webhooks.get(first.webhook_id)


async def test_shared_server_rejects_loopback(
    client: AsyncMaestroClient, unique: str
) -> None:
    try:
        webhook = await client.webhooks.create(
            f"loop-{unique}", "http://127.0.0.1:9/hook", ["model_version.created"]
        )
    except InvalidParameterException as exc:
        assert "scheme" in exc.message or "public" in exc.message
        return
    await client.webhooks.delete(webhook.webhook_id)
    pytest.skip("this server is configured to allow loopback webhook URLs")


async def test_invalid_events_rejected_locally(client: AsyncMaestroClient) -> None:
    with pytest.raises(ValidationException):
        await client.webhooks.create("x", "https://127.0.0.1/", ["nonsense"])
    with pytest.raises(ValidationException):
        await client.webhooks.create("x", "https://127.0.0.1/", [])


def delivery(
    secret: str | None, payload: dict[str, Any], *, age: float = 0.0
) -> tuple[dict[str, str], bytes]:
    """A delivery built the way MLflow 3.17 builds one."""
    body = json.dumps(payload).encode()
    delivery_id = "6f9a1b8e-3c2d-4e5f-8a7b-1c2d3e4f5a6b"
    timestamp = str(int(time.time() - age))
    headers = {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": timestamp}
    if secret is not None:
        headers["X-MLflow-Signature"] = sign_webhook_payload(
            secret, delivery_id, timestamp, body
        )
    return headers, body


TAG_SET = {
    "entity": "model_version_tag",
    "action": "set",
    "timestamp": "2026-12-03T10:00:00.123456+00:00",
    "data": {"name": "m", "version": "3", "key": "k", "value": "v"},
}


def test_signature_matches_mlflow_implementation() -> None:
    delivery_module = pytest.importorskip("mlflow.webhooks.delivery")
    ours = sign_webhook_payload(SECRET, "id-1", "1700000000", '{"a": 1}')
    theirs = delivery_module._generate_hmac_signature(
        SECRET, "id-1", "1700000000", '{"a": 1}'
    )
    assert ours == theirs


def test_parse_tag_delivery() -> None:
    headers, body = delivery(SECRET, TAG_SET)
    event = parse_webhook_delivery(headers, body, SECRET)
    assert event.type is RegistryEventType.VERSION_TAGS_CHANGED
    assert (event.model_name, event.version, event.key) == ("m", "3", "k")
    assert event.new_value == "v"
    assert event.old_value is None
    assert event.timestamp.microsecond == 123456
    lower = {k.lower(): v for k, v in headers.items()}
    assert parse_webhook_delivery(lower, body.decode(), SECRET) == event


def test_signature_edge_cases() -> None:
    headers, body = delivery(SECRET, TAG_SET)
    delivery_id = headers["X-MLflow-Delivery-Id"]
    timestamp = headers["X-MLflow-Timestamp"]
    signature = headers["X-MLflow-Signature"]
    assert verify_webhook_signature(SECRET, delivery_id, timestamp, body, signature)

    assert not verify_webhook_signature(
        SECRET, delivery_id, timestamp, body + b" ", signature
    )
    assert not verify_webhook_signature(SECRET, "other-id", timestamp, body, signature)
    assert not verify_webhook_signature(SECRET, delivery_id, timestamp, body, "")
    assert not verify_webhook_signature(SECRET, delivery_id, timestamp, body, "v1,AAAA")
    assert not verify_webhook_signature(
        SECRET, delivery_id, timestamp, body, "v2," + signature[3:]
    )
    assert not verify_webhook_signature("", delivery_id, timestamp, body, signature)
    assert not verify_webhook_signature(
        SECRET, delivery_id, "not-a-number", body, signature
    )

    rotated = f"v1,AAAA {signature}"
    assert verify_webhook_signature(SECRET, delivery_id, timestamp, body, rotated)

    stale = int(timestamp) + 301
    assert not verify_webhook_signature(
        SECRET, delivery_id, timestamp, body, signature, now=stale
    )
    assert verify_webhook_signature(
        SECRET, delivery_id, timestamp, body, signature, now=stale, tolerance=None
    )
    future = int(timestamp) - 301
    assert not verify_webhook_signature(
        SECRET, delivery_id, timestamp, body, signature, now=future
    )


def test_parse_rejects_bad_deliveries() -> None:
    headers, body = delivery(SECRET, TAG_SET)
    with pytest.raises(WebhookVerificationError):
        parse_webhook_delivery(headers, body, "wrong secret")
    old_headers, old_body = delivery(SECRET, TAG_SET, age=1000)
    with pytest.raises(WebhookVerificationError):
        parse_webhook_delivery(old_headers, old_body, SECRET)
    unsigned_headers, unsigned_body = delivery(None, TAG_SET)
    with pytest.raises(WebhookVerificationError):
        parse_webhook_delivery(unsigned_headers, unsigned_body, SECRET)
    event = parse_webhook_delivery(unsigned_headers, unsigned_body, None)
    assert event.type is RegistryEventType.VERSION_TAGS_CHANGED
    prompt = {**TAG_SET, "entity": "prompt_tag"}
    prompt_headers, prompt_body = delivery(SECRET, prompt)
    with pytest.raises(ValidationException, match="not a model registry event"):
        parse_webhook_delivery(prompt_headers, prompt_body, SECRET)
    with pytest.raises(ValidationException):
        parse_webhook_delivery({}, b"not json", None)


def test_parse_alias_events() -> None:
    for action, kind, new_value in (
        ("created", RegistryEventType.ALIAS_SET, "2"),
        ("deleted", RegistryEventType.ALIAS_REMOVED, None),
    ):
        payload = {
            "entity": "model_version_alias",
            "action": action,
            "timestamp": "2026-12-03T10:00:00+00:00",
            "data": {"name": "m", "alias": "champion", "version": "2"},
        }
        headers, body = delivery(SECRET, payload)
        event = parse_webhook_delivery(headers, body, SECRET)
        assert event.type is kind
        assert event.key == "champion"
        assert event.new_value == new_value


VERSION_CREATED = {
    "entity": "model_version",
    "action": "created",
    "timestamp": "2026-12-03T10:00:00+00:00",
    "data": {
        "name": "m",
        "version": "1",
        "source": "models:/m-1",
        "run_id": None,
        "tags": {"team": "search"},
        "description": None,
    },
}


def with_data(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Return `base` with its data fields changed; a value of ... removes one."""
    data = {**base["data"], **changes}
    return {**base, "data": {k: v for k, v in data.items() if v is not ...}}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (with_data(VERSION_CREATED, name=...), "data.name"),
        (with_data(VERSION_CREATED, name=None), "data.name"),
        (with_data(VERSION_CREATED, name=""), "data.name"),
        (with_data(VERSION_CREATED, name=7), "data.name"),
        (with_data(VERSION_CREATED, version=...), "data.version"),
        (with_data(VERSION_CREATED, version=None), "data.version"),
        (with_data(VERSION_CREATED, version={"a": 1}), "data.version"),
        (with_data(VERSION_CREATED, version="0"), "data.version"),
        (with_data(VERSION_CREATED, version=-2), "data.version"),
        (with_data(VERSION_CREATED, version=True), "data.version"),
        (with_data(VERSION_CREATED, version=1.5), "data.version"),
        (with_data(VERSION_CREATED, version="1e3"), "data.version"),
        (with_data(VERSION_CREATED, version=" 1"), "data.version"),
        (with_data(VERSION_CREATED, version="9" * 40), "data.version"),
        (with_data(VERSION_CREATED, tags=["a"]), "data.tags"),
        (with_data(VERSION_CREATED, tags={"a": 1}), "data.tags"),
        (with_data(VERSION_CREATED, source=None), "data.source"),
        (with_data(VERSION_CREATED, run_id=5), "data.run_id"),
        (with_data(VERSION_CREATED, description=["x"]), "data.description"),
        (with_data(TAG_SET, key=...), "data.key"),
        (with_data(TAG_SET, key=""), "data.key"),
        (with_data(TAG_SET, value=None), "data.value"),
        (with_data(TAG_SET, value=3), "data.value"),
        (
            {**TAG_SET, "action": "deleted", "data": {"name": "m", "key": "k"}},
            "version",
        ),
        ({**TAG_SET, "timestamp": None}, "timestamp"),
        ({**TAG_SET, "timestamp": "yesterday"}, "timestamp"),
        ({**TAG_SET, "entity": ["model_version_tag"]}, "entity"),
        ({**TAG_SET, "action": 1}, "action"),
        ({**TAG_SET, "data": []}, "'data' object"),
    ],
)
def test_parse_rejects_malformed_fields(payload: dict[str, Any], field: str) -> None:
    headers, body = delivery(SECRET, payload)
    with pytest.raises(ValidationException, match=field) as caught:
        parse_webhook_delivery(headers, body, SECRET)
    assert not isinstance(caught.value, WebhookVerificationError)


@pytest.mark.parametrize(
    ("alias_data", "field"),
    [
        ({"name": "m", "version": "2"}, "data.alias"),
        ({"name": "m", "alias": "", "version": "2"}, "data.alias"),
        ({"name": "m", "alias": "champion"}, "data.version"),
        ({"name": "m", "alias": "champion", "version": "two"}, "data.version"),
    ],
)
def test_parse_rejects_malformed_alias(alias_data: dict[str, Any], field: str) -> None:
    payload = {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-12-03T10:00:00+00:00",
        "data": alias_data,
    }
    headers, body = delivery(SECRET, payload)
    with pytest.raises(ValidationException, match=field):
        parse_webhook_delivery(headers, body, SECRET)


def test_parse_normalizes_version() -> None:
    headers, body = delivery(SECRET, with_data(VERSION_CREATED, version=12))
    event = parse_webhook_delivery(headers, body, SECRET)
    assert event.version == "12"
    assert event.raw is not None
    assert event.raw["tags"] == {"team": "search"}
    deleted_alias = {
        "entity": "model_version_alias",
        "action": "deleted",
        "timestamp": "2026-12-03T10:00:00+00:00",
        "data": {"name": "m", "alias": "champion"},
    }
    headers, body = delivery(SECRET, deleted_alias)
    removed = parse_webhook_delivery(headers, body, SECRET)
    assert removed.type is RegistryEventType.ALIAS_REMOVED
    assert removed.version is None


def signed(text: str) -> tuple[dict[str, str], bytes]:
    body = text.encode()
    headers, _ = delivery(None, {})
    headers["X-MLflow-Signature"] = sign_webhook_payload(
        SECRET, headers["X-MLflow-Delivery-Id"], headers["X-MLflow-Timestamp"], body
    )
    return headers, body


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_parse_rejects_json_constants(constant: str) -> None:
    text = json.dumps(TAG_SET).replace('"v"}', f'"v", "extra": {constant}}}')
    assert constant in text
    headers, body = signed(text)
    with pytest.raises(ValidationException, match=constant):
        parse_webhook_delivery(headers, body, SECRET)


def test_parse_rejects_duplicate_keys() -> None:
    text = json.dumps(TAG_SET).replace('"name": "m"', '"name": "m", "name": "other"')
    assert text.count('"name"') == 2
    headers, body = signed(text)
    with pytest.raises(ValidationException, match="duplicate key"):
        parse_webhook_delivery(headers, body, SECRET)
    outer = json.dumps(TAG_SET)[:-1] + ', "entity": "registered_model"}'
    headers, body = signed(outer)
    with pytest.raises(ValidationException, match="duplicate key"):
        parse_webhook_delivery(headers, body, SECRET)


@pytest.mark.parametrize("depth", [17, 1000, 100_000])
def test_parse_rejects_deep_nesting(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = json.dumps(TAG_SET).replace('"v"}', f'"v", "extra": {nested}}}')
    for secret in (SECRET, None):
        headers, body = signed(text)
        with pytest.raises(ValidationException, match="nests deeper"):
            parse_webhook_delivery(headers, body, secret)


def test_parse_accepts_shallow_nesting() -> None:
    nested = "[" * 13 + "]" * 13
    text = json.dumps(TAG_SET).replace('"v"}', f'"v", "extra": {nested}}}')
    headers, body = signed(text)
    event = parse_webhook_delivery(headers, body, SECRET)
    assert event.raw is not None
    assert event.raw["extra"] == json.loads(nested)


@pytest.mark.parametrize("timestamp", ["¹", "١٧٠٠٠٠٠٠٠٠", "9" * 5000, "-1", "1e9"])
def test_hostile_timestamp_rejected(timestamp: str) -> None:
    headers, body = delivery(SECRET, TAG_SET)
    signature = sign_webhook_payload(
        SECRET, headers["X-MLflow-Delivery-Id"], timestamp, body
    )
    hostile = {
        **headers,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": signature,
    }

    assert not verify_webhook_signature(
        SECRET, headers["X-MLflow-Delivery-Id"], timestamp, body, signature
    )
    with pytest.raises(WebhookVerificationError):
        parse_webhook_delivery(hostile, body, SECRET, tolerance=None)


async def test_webhook_arguments_checked_locally(client: AsyncMaestroClient) -> None:
    hooks = client.webhooks
    event = ["model_version.created"]
    for url in ("", "ftp://host/x", "https://", "not a url", None):
        with pytest.raises(ValidationException, match="url"):
            await hooks.create("x", url, event)  # type: ignore[arg-type]
    with pytest.raises(ValidationException, match="name"):
        await hooks.create(" ", "https://hooks.example/x", event)
    with pytest.raises(ValidationException, match="status must be one of"):
        await hooks.create("x", "https://hooks.example/x", event, status="on")
    with pytest.raises(ValidationException, match="status must be one of"):
        await hooks.update("wh-1", status="paused")
    with pytest.raises(ValidationException, match="page_size"):
        hooks.list(page_size=0)


async def test_webhook_status_any_case(
    hooks_client: AsyncMaestroClient, unique: str
) -> None:
    webhook = await hooks_client.webhooks.create(
        f"case-{unique}",
        "http://127.0.0.1:9/hook",
        "registered_model.created",
        status="disabled",
    )
    assert webhook.status is WebhookStatus.DISABLED
    updated = await hooks_client.webhooks.update(webhook.webhook_id, status="Active")
    assert updated.status is WebhookStatus.ACTIVE
    await hooks_client.webhooks.delete(webhook.webhook_id)
