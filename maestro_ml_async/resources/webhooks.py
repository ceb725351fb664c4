"""The webhooks sub-client (MLflow 3.3 and newer, SQL-backed servers).

A server without webhooks raises `NotSupportedByServerException`. The
functions that check and parse deliveries live here too, so a receiver needs
only this module.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from urllib.parse import urlsplit

from .._exceptions import NotFoundException, ValidationException
from .._pagination import AsyncPager, Page
from .._transport import RetryMode
from .._validation import check_choice, check_collection, check_max_results
from ..types.webhooks import (
    Webhook,
    WebhookEvent,
    WebhookStatus,
    WebhookTestResult,
)
from ._base import AsyncMlflowResource, object_path
from ._responses import parse_field, parse_items, parse_object
from ._webhook_delivery import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookVerificationError,
    parse_webhook_delivery,
    sign_webhook_payload,
    verify_webhook_signature,
)

__all__ = [
    "DELIVERY_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AsyncWebhooksResource",
    "WebhookEventInput",
    "WebhookVerificationError",
    "parse_webhook_delivery",
    "sign_webhook_payload",
    "verify_webhook_signature",
]

_FEATURE = "webhooks"
MAX_PAGE_SIZE = 1000

WebhookEventInput = WebhookEvent | str | tuple[str, str]


def _event(item: WebhookEventInput) -> WebhookEvent:
    try:
        if isinstance(item, WebhookEvent):
            return item
        if isinstance(item, str):
            return WebhookEvent.parse(item)
        if isinstance(item, tuple) and len(item) == 2:
            return WebhookEvent(entity=item[0], action=item[1])
    except ValueError as exc:
        raise ValidationException(f"invalid webhook event {item!r}: {exc}") from None
    raise ValidationException(
        "a webhook event must be a WebhookEvent, 'entity.action' or an "
        f"(entity, action) pair, got {item!r}"
    )


def _events(events: Iterable[WebhookEventInput]) -> builtins.list[dict[str, str]]:
    if isinstance(events, (str, tuple, WebhookEvent)):
        events = [events]
    result = [
        _event(item).to_wire() for item in check_collection(events, what="events")
    ]
    if not result:
        raise ValidationException("a webhook needs at least one event")
    return result


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationException(f"{what} must be a non-empty string, got {value!r}")
    return value


def _check_url(url: object) -> str:
    text = _check_text(url, "webhook url")
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValidationException(
            f"webhook url {text!r} is invalid: use an http:// or https:// URL "
            "with a host (MLflow accepts only https unless the server allows http)"
        )
    return text


def _webhook_path(webhook_id: str, suffix: str = "") -> str:
    return object_path("webhooks", webhook_id, suffix, what="webhook id")


class AsyncWebhooksResource(AsyncMlflowResource):
    """Registry webhooks: the server POSTs signed events to a URL.

    The requests go to the registry URI (`Config.registry_uri`), as MLflow's
    client sends webhook calls through its registry client.

    MLflow 3.17 accepts only ``https`` URLs that resolve to public addresses,
    unless the server runs with ``MLFLOW_WEBHOOK_ALLOWED_SCHEMES`` and
    ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true``. The server never returns a
    webhook's secret.
    """

    async def create(
        self,
        name: str,
        url: str,
        events: Iterable[WebhookEventInput],
        *,
        description: str | None = None,
        secret: str | None = None,
        status: WebhookStatus | str = WebhookStatus.ACTIVE,
    ) -> Webhook:
        """Create a webhook.

        Args:
            name: A display name.
            url: Where the server POSTs deliveries.
            events: For example ``["model_version.created"]``.
            description: Free text.
            secret: The HMAC key deliveries are signed with; unsigned when None.
            status: ACTIVE or DISABLED.
        """
        body: dict[str, object] = {
            "name": _check_text(name, "webhook name"),
            "url": _check_url(url),
            "events": _events(events),
            "status": check_choice(WebhookStatus, status, what="status").value,
        }
        if description is not None:
            body["description"] = description
        if secret is not None:
            body["secret"] = secret
        response = await self._transport.call(
            "POST",
            "webhooks",
            json=body,
            retry=RetryMode.UNSENT,
            feature=_FEATURE,
            registry=True,
        )
        return parse_field(response, "webhook", Webhook.model_validate)

    def list(
        self, *, max_results: int | None = None, page_size: int = 100
    ) -> AsyncPager[Webhook]:
        """List the server's webhooks, page by page."""
        size = check_max_results(page_size, maximum=MAX_PAGE_SIZE, name="page_size")
        if max_results is not None:
            size = min(size, check_max_results(max_results, maximum=2**31 - 1))

        async def fetch(token: str | None) -> Page[Webhook]:
            params: dict[str, object] = {"max_results": size}
            if token:
                params["page_token"] = token
            response = await self._transport.call(
                "GET", "webhooks", params=params, feature=_FEATURE, registry=True
            )
            items = parse_items(response, "webhooks", Webhook.model_validate)
            return Page(items, response.get("next_page_token"), response)

        return AsyncPager(fetch, max_results=max_results)

    async def get(self, webhook_id: str) -> Webhook:
        """Return a webhook by id."""
        response = await self._transport.call(
            "GET",
            _webhook_path(webhook_id),
            feature=_FEATURE,
            registry=True,
            not_found=NotFoundException,
        )
        return parse_field(response, "webhook", Webhook.model_validate)

    async def update(
        self,
        webhook_id: str,
        *,
        name: str | None = None,
        url: str | None = None,
        events: Iterable[WebhookEventInput] | None = None,
        description: str | None = None,
        secret: str | None = None,
        status: WebhookStatus | str | None = None,
    ) -> Webhook:
        """Change some fields of a webhook; None leaves a field unchanged."""
        body: dict[str, object] = {}
        if name is not None:
            body["name"] = _check_text(name, "webhook name")
        if url is not None:
            body["url"] = _check_url(url)
        if events is not None:
            body["events"] = _events(events)
        if description is not None:
            body["description"] = description
        if secret is not None:
            body["secret"] = secret
        if status is not None:
            body["status"] = check_choice(WebhookStatus, status, what="status").value
        response = await self._transport.call(
            "PATCH",
            _webhook_path(webhook_id),
            json=body,
            feature=_FEATURE,
            registry=True,
        )
        return parse_field(response, "webhook", Webhook.model_validate)

    async def delete(self, webhook_id: str) -> None:
        """Delete a webhook."""
        await self._transport.call(
            "DELETE", _webhook_path(webhook_id), feature=_FEATURE, registry=True
        )

    async def test(
        self, webhook_id: str, event: WebhookEventInput | None = None
    ) -> WebhookTestResult:
        """Ask the server to send an example delivery to the webhook's URL.

        Args:
            webhook_id: The webhook.
            event: The event to send an example of (None: its first event).
        """
        body: dict[str, object] = {}
        if event is not None:
            body["event"] = _event(event).to_wire()
        response = await self._transport.call(
            "POST",
            _webhook_path(webhook_id, "/test"),
            json=body,
            retry=RetryMode.NEVER,
            feature=_FEATURE,
            registry=True,
        )
        result = response.get("result") or {}
        return parse_object(
            response, "result", result, WebhookTestResult.model_validate
        )
