"""Flywheel's model and data metrics for Prometheus, read fresh at every scrape.

Served at ``/metrics`` by ``flywheel serve`` and by ``flywheel metrics-exporter``. Every series is
read when Prometheus scrapes, from where its owner keeps it: the champion and its evaluated metric from
the registry (the ``flywheel.gate.evaluated`` tag the gate records), the last drift share from the drift
reports in the lake (``reports/drift/run=<run>/summary.json``, docs/architecture.md), rows landed and
quarantined per source from the landing manifests, rows scored per model version from the predictions
manifests, the champion's live metric from ``reports/performance/live.json``, the age of each DAG's last
run report (``reports/runs/<dag_id>/latest.json`` in the lake, or under the home), and the Kafka lag
the last ingest run left (its manifest). A part that cannot be read is counted in
``flywheel_metrics_errors`` with its name, and the other series are still exported.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipelines import promote
from pipelines.common.config import Params
from pipelines.common.lake import Lake
from pipelines.common.settings import Settings
from pipelines.common.tracking import client

if TYPE_CHECKING:
    from pipelines.scoring.serve.champion import ChampionWatcher

log = logging.getLogger(__name__)

DRIFT_SUMMARIES = "reports/drift/*/summary.json"


class FlywheelCollector(Collector):
    """The collector behind ``/metrics``: champion, evaluated metric, last drift share, landed rows."""

    def __init__(self, params: Params, settings: Settings, watcher: ChampionWatcher | None = None) -> None:
        self.params, self.settings, self.watcher = params, settings, watcher

    def collect(self) -> Iterator[Metric]:
        """One scrape: each part read on its own, a failing part counted, never hiding the others."""
        errors = GaugeMetricFamily(
            "flywheel_metrics_errors", "Parts of Flywheel's metrics that could not be read", labels=["part"]
        )
        # This process lives long: an object store's cached listings (and ETags) would hide, or refuse to
        # read, a report overwritten since the last scrape (runs/<dag_id>/latest.json, live.json)
        Lake(self.settings.lake_root(self.params)).fs.invalidate_cache()
        parts = (
            ("registry", self._registry),
            ("drift", self._drift),
            ("lake", self._lake),
            ("scoring", self._scoring),
            ("runs", self._runs),
            ("kafka", self._kafka),
        )
        for part, read in parts:
            try:
                yield from read()
                errors.add_metric([part], 0)
            except Exception as exc:  # a scrape must answer: the failing part is named in the series
                log.warning("metrics: %s could not be read: %s", part, exc)
                errors.add_metric([part], 1)
        if self.watcher is not None:
            yield from self._served()
        yield errors

    def _registry(self) -> Iterator[Metric]:
        name = self.params.promote.model_name
        found = promote.version_behind(client(self.settings), name, promote.CHAMPION)
        version = GaugeMetricFamily(
            "flywheel_champion_version", "Version behind the registry's champion alias", labels=["model"]
        )
        evaluated = GaugeMetricFamily(
            "flywheel_champion_evaluated",
            "The champion's metric on its held-out test rows, as the gate evaluated it (block-bootstrap mean"
            " and interval)",
            labels=["model", "metric", "stat"],
        )
        if found is not None:
            version.add_metric([name], float(found.version))
            intervals: dict[str, Any] = json.loads(found.tags.get("flywheel.gate.evaluated") or "{}")
            for metric, interval in sorted(intervals.items()):
                for stat in ("mean", "low", "high"):
                    if isinstance(interval, dict) and interval.get(stat) is not None:
                        evaluated.add_metric([name, metric, stat], float(interval[stat]))
        yield version
        yield evaluated

    def _drift(self) -> Iterator[Metric]:
        lake = Lake(self.settings.lake_root(self.params))
        summaries = [lake.read_json(path) for path in lake.fs.glob(lake.path(DRIFT_SUMMARIES))]
        checks = [s for s in summaries if isinstance(s, dict) and s.get("drift_share") is not None]
        share = GaugeMetricFamily("flywheel_drift_share", "Share of columns drifted in the last drift check")
        drifted = GaugeMetricFamily(
            "flywheel_drift_column_score", "Drift score per column in the last drift check", labels=["column"]
        )
        if checks:
            last = max(checks, key=lambda s: (str((s.get("window") or {}).get("end")), str(s.get("run_id"))))
            share.add_metric([], float(last["drift_share"]))
            for column in last.get("columns") or []:
                if isinstance(column, dict) and column.get("score") is not None:
                    drifted.add_metric([str(column.get("name"))], float(column["score"]))
        yield share
        yield drifted

    def _lake(self) -> Iterator[Metric]:
        lake = Lake(self.settings.lake_root(self.params))
        totals: dict[str, dict[str, int]] = {}
        for partition in lake.complete_partitions("landing"):
            manifest = lake.read_json(f"{partition}/_manifest.json") or {}
            counts, source = manifest.get("counts") or {}, str(manifest.get("source") or "unknown")
            for kind in ("landed", "quarantined"):
                totals.setdefault(source, {"landed": 0, "quarantined": 0})[kind] += int(counts.get(kind, 0))
        for kind in ("landed", "quarantined"):
            family = CounterMetricFamily(
                f"flywheel_rows_{kind}", f"Records {kind} by ingestion, per source", labels=["source"]
            )
            for source, counts in sorted(totals.items()):
                family.add_metric([source], counts[kind])
            yield family

    def _scoring(self) -> Iterator[Metric]:
        """Rows scored per model version (predictions manifests) and the latest live metric (live.json)."""
        from pipelines.scoring import live, manifest

        lake = Lake(self.settings.lake_root(self.params))
        scored = CounterMetricFamily(
            "flywheel_rows_scored",
            "Validated events scored by batch scoring, per model version",
            labels=["model", "version"],
        )
        totals: dict[tuple[str, str], int] = {}
        for entry in manifest.scored_manifests(lake).values():
            key = (str(entry.get("model_name")), str(entry.get("model_version")))
            totals[key] = totals.get(key, 0) + int(entry.get("rows", 0))
        for (model, version), rows in sorted(totals.items()):
            scored.add_metric([model, version], rows)
        yield scored
        yield live_metric_family(lake.read_json(lake.path(*live.REPORT)) or {})

    def _runs(self) -> Iterator[Metric]:
        """Seconds since each DAG's last run report was written (its tasks write one when they succeed).

        Read from the lake (``reports/runs/<dag_id>/latest.json``), which every worker and client shares.
        """
        from datetime import datetime

        from pipelines import report

        written = {
            dag_id: datetime.fromisoformat(str(latest["written_at"])).timestamp()
            for dag_id, latest in report.latest_all(self.params, self.settings).items()
            if latest.get("written_at")
        }
        yield last_run_age_family(written, time.time())

    def _kafka(self) -> Iterator[Metric]:
        """Consumer lag each partition was left with by the last Kafka ingest run (no broker call)."""
        lake = Lake(self.settings.lake_root(self.params))
        last: dict[str, Any] = {}
        for partition in lake.complete_partitions("landing", "kafka"):
            found = lake.read_json(f"{partition}/_manifest.json") or {}
            if str(found.get("written_at", "")) >= str(last.get("written_at", "")):
                last = found
        yield kafka_lag_family(last)

    def _served(self) -> Iterator[Metric]:
        assert self.watcher is not None
        served = GaugeMetricFamily(
            "flywheel_serve_model_version",
            "Version this flywheel serve process answers with",
            labels=["model"],
        )
        current = self.watcher.current
        if current is not None:
            served.add_metric([current.name], float(current.version))
        yield served


def live_metric_family(report: dict[str, Any]) -> GaugeMetricFamily:
    """The champion's live metric on its latest measured day (``reports/performance/live.json``)."""
    family = GaugeMetricFamily(
        "flywheel_champion_live",
        "The live metric of the latest day with a value, from late labels (value and interval bounds)",
        labels=["version", "metric", "stat"],
    )
    days = [d for d in report.get("days") or [] if isinstance(d, dict) and d.get("value") is not None]
    if days:
        day = max(days, key=lambda d: str(d.get("day")))
        labels = [str(day.get("model_version")), str(day.get("metric") or report.get("metric"))]
        family.add_metric([*labels, "value"], float(day["value"]))
        for stat in ("low", "high"):
            if (day.get("interval") or {}).get(stat) is not None:
                family.add_metric([*labels, stat], float(day["interval"][stat]))
    return family


def last_run_age_family(written: dict[str, float], now: float) -> GaugeMetricFamily:
    """Per DAG: seconds from when its last run report was written (epoch seconds) to ``now``."""
    family = GaugeMetricFamily(
        "flywheel_last_run_age_seconds",
        "Seconds since the last successful run of each DAG wrote its run report",
        labels=["dag_id"],
    )
    for dag_id, at in sorted(written.items()):
        family.add_metric([dag_id], max(0.0, now - at))
    return family


def kafka_lag_family(manifest: dict[str, Any]) -> GaugeMetricFamily:
    """Per topic partition: the end offset seen when the last Kafka ingest run started minus its next offset.

    Read from that run's landing manifest, so a scrape never calls the broker: it is the lag the run
    left, not records produced since (Kafka's own exporters measure that against the broker).
    """
    family = GaugeMetricFamily(
        "flywheel_kafka_consumer_lag",
        "Records left behind by the last Kafka ingest run, per topic partition",
        labels=["topic", "partition"],
    )
    for entry in manifest.get("offsets") or []:
        if entry.get("end_at_start") is not None and entry.get("next") is not None:
            lag = max(0, int(entry["end_at_start"]) - int(entry["next"]))
            family.add_metric([str(entry["topic"]), str(entry["partition"])], float(lag))
    return family


def registry(params: Params, settings: Settings, watcher: ChampionWatcher | None = None) -> CollectorRegistry:
    """A Prometheus registry holding Flywheel's collector (and nothing process-global)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(FlywheelCollector(params, settings, watcher))
    return found


def export_metrics(
    params: Params, settings: Settings, *, host: str = "127.0.0.1", port: int = 9108
) -> dict[str, Any]:
    """``flywheel metrics-exporter``: serve ``/metrics`` on ``host:port`` until interrupted."""
    import threading

    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=registry(params, settings))
    log.info("Flywheel metrics on http://%s:%d/metrics", host, port)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        thread.join()
    return {"host": host, "port": port}
