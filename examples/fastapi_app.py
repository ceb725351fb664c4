"""A FastAPI service that calls the async client from its request handlers.

One `AsyncMaestroClient` is created in the app's lifespan and shared by every
request, so all handlers use one connection pool. Handlers ``await`` the client
and never block the event loop, so a slow fan-out request (``/models/batch``)
does not hold up ``/health`` (``tests/test_examples.py`` checks this).

Run it with ``uvicorn --app-dir examples fastapi_app:app`` (``MAESTRO_ML_MLFLOW_URI``
selects the MLflow server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from maestro_ml_async import (
    AsyncMaestroClient,
    ModelNotFoundException,
    ValidationException,
)


class TagRequest(BaseModel):
    """Body of ``POST /models/{name}/tags``."""

    key: str
    value: str


class BatchRequest(BaseModel):
    """Body of ``POST /models/batch``."""

    names: list[str]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Create the shared client on start-up and close it on shutdown."""
    async with AsyncMaestroClient() as client:
        app.state.maestro = client
        yield


app = FastAPI(title="model registry facade", lifespan=lifespan)


@app.exception_handler(ValidationException)
async def invalid_input(request: Request, exc: ValidationException) -> JSONResponse:
    """Return a 422 response when the SDK or MLflow rejects a name, key or value.

    Without this handler such an error, for example an empty name in
    ``/models/batch`` or a name with ``:``, would reach the client as a 500.
    """
    return JSONResponse(status_code=422, content={"detail": str(exc)})


def maestro(request: Request) -> AsyncMaestroClient:
    """Return the client that the lifespan stored on the app."""
    client: AsyncMaestroClient = request.app.state.maestro
    return client


@app.get("/health")
async def health() -> dict[str, str]:
    """Return at once, whatever else is in flight."""
    return {"status": "ok"}


@app.get("/models/{name}")
async def get_model(name: str, request: Request) -> dict[str, Any]:
    """Return a model with its latest versions and aliases; 404 when missing."""
    try:
        model = await maestro(request).models.get(name)
    except ModelNotFoundException as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    latest = model.latest_version
    return {
        "name": model.name,
        "latest_version": latest.version if latest else None,
        "aliases": model.aliases,
        "tags": model.tags,
    }


@app.post("/models/{name}/tags")
async def tag_model(name: str, tag: TagRequest, request: Request) -> dict[str, str]:
    """Set one tag on a model."""
    try:
        await maestro(request).models.set_tag(name, tag.key, tag.value)
    except ModelNotFoundException as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return {"name": name, tag.key: tag.value}


@app.post("/models/batch")
async def get_models(batch: BatchRequest, request: Request) -> dict[str, Any]:
    """Fetch many models concurrently; missing ones are listed separately."""
    results = await maestro(request).models.get_many(batch.names)
    found = {
        name: result.latest_version.version if result.latest_version else None
        for name, result in zip(batch.names, results, strict=True)
        if not isinstance(result, BaseException)
    }
    missing = [
        name
        for name, result in zip(batch.names, results, strict=True)
        if isinstance(result, BaseException)
    ]
    return {"found": found, "missing": missing}
