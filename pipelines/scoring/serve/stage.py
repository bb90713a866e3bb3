"""Serve: ``flywheel serve`` answers HTTP requests with the registry's ``champion``, following the alias.

:func:`run` is the edge: connect to the registry, load the champion, poll its alias, and serve the app
(:mod:`.app`) with uvicorn until stopped. :class:`ServerThread` runs the same server in a thread of
the calling process (the tests and the benchmark use it).
"""

from __future__ import annotations

import logging
import os
import threading
from types import TracebackType
from typing import Any

from pipelines.common.config import Params
from pipelines.common.settings import Settings
from pipelines.common.tracking import client
from pipelines.scoring.serve.app import TOKEN_ENV, create_app
from pipelines.scoring.serve.champion import ChampionWatcher
from pipelines.scoring.serve.errors import ServeError
from pipelines.scoring.serve.metrics import registry
from pipelines.scoring.serve.requests import RecordChecker

log = logging.getLogger(__name__)


def token_from_env(env: dict[str, str] | None = None) -> str | None:
    """The bearer token callers must send (``$FLYWHEEL_SERVE_TOKEN``); None when unset or empty."""
    return (dict(os.environ if env is None else env).get(TOKEN_ENV) or "").strip() or None


def build(params: Params, settings: Settings, token: str | None = None) -> tuple[Any, ChampionWatcher]:
    """The app and its watcher, with the champion loaded when there is one (not yet polling)."""
    cfg = params.serve
    watcher = ChampionWatcher(client(settings), params.promote.model_name, cfg.poll_seconds)
    watcher.refresh()
    checker = RecordChecker(params.schema, cfg.unknown_category, cfg.max_rows)
    metrics = registry(params, settings, watcher)
    return create_app(watcher, checker, token, metrics), watcher


def _server(app: Any, host: str, port: int) -> Any:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)


class ServerThread:
    """The server of :func:`build` in a background thread: ``with ServerThread(...) as url: ...``."""

    def __init__(self, params: Params, settings: Settings, port: int, token: str | None = None) -> None:
        self.app, self.watcher = build(params, settings, token)
        self.server = _server(self.app, "127.0.0.1", port)
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.server.run, name="flywheel-serve", daemon=True)

    def __enter__(self) -> str:
        self.watcher.start()
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise ServeError(f"the server on {self.url} did not start; expected a free port")
            threading.Event().wait(0.02)
        return self.url

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self._thread.join()
        self.watcher.stop()


def run(
    params: Params,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
) -> dict[str, Any]:
    """Serve the champion on ``host:port`` until interrupted; the last served version when it ends."""
    if not 0 < port < 65536:
        raise ServeError(f"--port {port}: expected a TCP port between 1 and 65535")
    app, watcher = build(params, settings, token)
    served = watcher.current
    log.info(
        "serving %s on http://%s:%d (%s; alias polled every %gs; %s)",
        params.promote.model_name,
        host,
        port,
        f"v{served.version}" if served else "no champion yet",
        params.serve.poll_seconds,
        "bearer token required" if token else "no token: set FLYWHEEL_SERVE_TOKEN to require one",
    )
    watcher.start()
    try:
        _server(app, host, port).run()
    finally:
        watcher.stop()
    last = watcher.current
    return {"model_name": params.promote.model_name, "version": last.version if last else None}
