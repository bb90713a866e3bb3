"""The model being served, and the watcher that follows the registry's ``champion`` alias.

A request takes :attr:`ChampionWatcher.current` once and scores with that model to the end, so a
swap never changes a model under a request in flight. The watcher polls the alias every
``serve.poll_seconds``; when it points at another version, that version is loaded in the watcher's
own thread while the old one keeps answering, then swapped in with one assignment. A version that
fails to load is recorded (``/health`` shows it) and the old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines import promote

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version and since when it serves."""

    name: str
    version: str
    run_id: str | None
    model: Any  # an MLflow PyFuncModel: raw rows in, ``probability`` and ``label`` out
    since: datetime

    def describe(self) -> dict[str, Any]:
        """``/version``: which model answers, and since when."""
        return {
            "model_name": self.name,
            "version": self.version,
            "alias": promote.CHAMPION,
            "run_id": self.run_id,
            "model_uri": f"models:/{self.name}/{self.version}",
            "serving_since": self.since.isoformat(timespec="seconds"),
        }

    def predict(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and 0/1 labels (at the model's threshold) for checked raw rows."""
        out = self.model.predict(rows)
        return np.asarray(out["probability"], dtype=float), np.asarray(out["label"], dtype=np.int64)


def load_version(name: str, version: str, run_id: str | None) -> ServedModel:
    """Load ``models:/<name>/<version>`` through MLflow's pyfunc flavour."""
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return ServedModel(name, version, run_id, model, datetime.now(UTC))


Loader = Callable[[str, str, str | None], ServedModel]


class ChampionWatcher:
    """Follows ``models:/<name>@champion``: loads the version behind it, and the next one when it moves."""

    def __init__(
        self, mlflow_client: MlflowClient, name: str, poll_seconds: float, load: Loader = load_version
    ) -> None:
        self.client, self.name, self.poll_seconds, self.load = mlflow_client, name, poll_seconds, load
        self.current: ServedModel | None = None
        self.last_error: str | None = None
        self.checked_at: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Look the alias up; load and swap in the version behind it when it changed. True on a swap."""
        found = promote.version_behind(self.client, self.name, promote.CHAMPION)
        self.checked_at = datetime.now(UTC)
        if found is None:
            self.last_error = f"model {self.name!r} has no {promote.CHAMPION!r} alias yet"
            return False
        version = str(found.version)
        if self.current is not None and self.current.version == version:
            self.last_error = None
            return False
        loaded = self.load(self.name, version, found.run_id)
        before, self.current, self.last_error = self.current, loaded, None
        log.info("serving %s v%s (was %s)", self.name, version, before and f"v{before.version}")
        return True

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as exc:  # a registry outage or a broken version: keep serving what loaded
                self.last_error = f"{type(exc).__name__}: {exc}"
                serving = self.current.version if self.current else None
                log.warning("champion refresh failed, still serving v%s: %s", serving, exc)

    def start(self) -> None:
        """Poll the alias in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._poll, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the polling thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def health(self) -> dict[str, Any]:
        """``/health``: ready when a model is loaded; the last refresh problem, if any."""
        served = self.current
        return {
            "ready": served is not None,
            "model_name": self.name,
            "version": served.version if served else None,
            "checked_at": self.checked_at.isoformat(timespec="seconds") if self.checked_at else None,
            "poll_seconds": self.poll_seconds,
            "problem": self.last_error,
        }
