"""The HTTP app of ``flywheel serve`` (FastAPI): ``/health``, ``/version`` and ``/predict``.

``/predict`` takes ``{"records": [{...}, ...]}`` (or a bare list) of raw rows in the schema of
``params.yaml`` and answers ``{"model": {...}, "predictions": [{"probability", "label"[, key]}]}``;
a record that breaks a rule is answered 400 with the record, field, value and rule. When a bearer token
is configured (``FLYWHEEL_SERVE_TOKEN``), every endpoint but ``/health`` (the liveness probe) answers
401 without it.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from pipelines.scoring.serve.champion import ChampionWatcher, ServedModel
from pipelines.scoring.serve.errors import InvalidRecord, Unauthorized
from pipelines.scoring.serve.requests import RecordChecker

TOKEN_ENV = "FLYWHEEL_SERVE_TOKEN"  # where `flywheel serve` reads the bearer token from

try:  # the faster codec when installed (it comes with the dependency set); the standard library else
    import orjson

    def _loads(body: bytes) -> Any:
        return orjson.loads(body)

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - depends on the environment

    def _loads(body: bytes) -> Any:
        return json.loads(body)

    def _dumps(value: Any) -> bytes:
        return json.dumps(value).encode()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(body), status_code=status, media_type="application/json", headers=headers)


def _not_ready(watcher: ChampionWatcher) -> Response:
    return _json(503, {"error": "no model loaded yet", **watcher.health()})


def score(served: ServedModel, checker: RecordChecker, body: bytes) -> dict[str, Any]:
    """Decode, check and score one request body with one model version (raises InvalidRecord)."""
    try:
        payload = _loads(body)
    except ValueError as exc:
        shown = body[:60].decode("utf-8", "replace")
        raise InvalidRecord(None, None, shown, f"expected a JSON body ({exc})") from None
    rows, keys = checker.frame(payload)
    probability, label = served.predict(rows)
    predictions: list[dict[str, Any]] = [
        {"probability": p, "label": y} for p, y in zip(probability.tolist(), label.tolist(), strict=True)
    ]
    if keys is not None:
        for prediction, key in zip(predictions, keys, strict=True):
            prediction["key"] = key
    return {"model": {"name": served.name, "version": served.version}, "predictions": predictions}


def create_app(
    watcher: ChampionWatcher, checker: RecordChecker, token: str | None = None, metrics: Any | None = None
) -> FastAPI:
    """The app serving whatever ``watcher`` holds; ``token``: the bearer token every caller must send;
    ``metrics``: a Prometheus ``CollectorRegistry`` served at ``/metrics``."""
    expected = f"Bearer {token}".encode() if token else None

    def authorized(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if expected is not None and not hmac.compare_digest(given, expected):
            raise Unauthorized()

    app = FastAPI(title="Flywheel champion", docs_url=None, redoc_url=None, openapi_url=None)
    guarded = [Depends(authorized)]

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> Response:
        return _json(
            401,
            {"error": f"missing or wrong bearer token; expected 'Authorization: Bearer <{TOKEN_ENV}>'"},
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.get("/health")
    async def health() -> Response:
        report = watcher.health()
        return _json(200 if report["ready"] else 503, report)

    @app.get("/version", dependencies=guarded)
    async def version() -> Response:
        served = watcher.current
        return _not_ready(watcher) if served is None else _json(200, served.describe())

    @app.post("/predict", dependencies=guarded)
    async def predict(request: Request) -> Response:
        served = watcher.current  # this request's model, whatever the watcher swaps in meanwhile
        if served is None:
            return _not_ready(watcher)
        body = await request.body()
        try:
            answer = await run_in_threadpool(score, served, checker, body)
        except InvalidRecord as exc:
            return _json(400, exc.detail())
        return _json(200, answer)

    if metrics is not None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        @app.get("/metrics", dependencies=guarded)
        async def prometheus() -> Response:
            text = await run_in_threadpool(generate_latest, metrics)
            return Response(text, media_type=CONTENT_TYPE_LATEST)

    return app
