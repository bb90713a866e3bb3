"""The drift stage's edges: the current window from the lake, the cooldown's memory, the summary lines."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.common.lake import MANIFEST, Lake
from pipelines.drift import stage as drift
from pipelines.drift.check import DriftInputError
from pipelines.featurize import Window


def validated(lake: Lake, run: str, frame: pd.DataFrame) -> None:
    part = lake.partition("validated", run, source="files")
    lake.write_table(f"{part}/part-00000.parquet", pa.Table.from_pandas(frame, preserve_index=False))
    lake.write_json(f"{part}/{MANIFEST}", {"written_at": run})


def events(schema, times: list[str]) -> pd.DataFrame:
    n = len(times)
    data = {
        schema.key: [f"k{i}" for i in range(n)],
        schema.event_time: pd.to_datetime(times, utc=True),
        schema.target: np.zeros(n, dtype="int8"),
    }
    for column in schema.columns:
        data[column.name] = [1.0] * n if column.is_numeric else [column.categories[0]] * n
    return pd.DataFrame(data)


def test_current_window_reads_the_validated_tier(tmp_path, demo_params):
    lake, schema = Lake(str(tmp_path)), demo_params.schema
    validated(
        lake, "r1", events(schema, ["2026-11-19T10:00:00Z", "2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z"])
    )
    frame, partitions = drift.current_window(
        lake, schema, Window.ending_on(datetime(2026, 11, 20, tzinfo=UTC), 1)
    )
    assert partitions == 1 and len(frame) == 1


def test_a_validated_partition_missing_a_column_is_named(tmp_path, demo_params):
    lake, schema = Lake(str(tmp_path)), demo_params.schema
    validated(lake, "r1", events(schema, ["2026-11-20T10:00:00Z"]).drop(columns=schema.columns[0].name))
    with pytest.raises(DriftInputError, match=rf"run=r1 lacks column\(s\) \['{schema.columns[0].name}'\]"):
        drift.current_window(lake, schema, Window.ending_on(datetime(2026, 11, 20, tzinfo=UTC), 1))


def test_the_cooldown_memory_ignores_a_retry_of_the_same_run(tmp_path):
    lake, at = Lake(str(tmp_path)), datetime(2026, 11, 21, 9, tzinfo=UTC)
    assert drift.last_retrain(lake) is None
    drift.record_retrain(lake, "run-1", at, {"report": {"html": "/r.html"}, "verdict": {"reasons": ["x"]}})
    assert drift.last_retrain(lake, "run-2") == at
    assert drift.last_retrain(lake, "run-1") is None  # a retry of the run that asked must not block itself
    assert lake.read_json(lake.path(*drift.STATE))["report"] == {"html": "/r.html"}


def test_describe_says_what_was_found_in_a_few_lines():
    summary = {
        "run_id": "r",
        "window": {"start": "2026-11-20", "end": "2026-11-21"},
        "rows_current": 900,
        "rows_reference": 2000,
        "champion": "models:/m/1",
        "drift_share": 0.5,
        "columns": [
            {"name": "a", "drifted": True, "skipped": False},
            {"name": "b", "drifted": False, "skipped": False},
        ],
        "prediction": {"method": "wasserstein", "score": 0.3, "drifted": True},
        "roc_auc": 0.61,
        "pr_auc": 0.05,
        "report": {"html": "/lake/report.html"},
        "verdict": {"retrain": True, "reasons": ["drift share 0.50 >= 0.5"]},
    }
    lines = drift.describe(summary)
    assert len(lines) == 5
    assert "900 rows vs models:/m/1's 2000 training rows" in lines[0]
    assert lines[1] == "data drift: share 0.50, 1 of 2 columns: a"
    assert "prediction drift wasserstein 0.300 (drifted)" in lines[2] and "ROC-AUC 0.610" in lines[2]
    assert lines[3] == "verdict: retrain: drift share 0.50 >= 0.5" and lines[4] == "report: /lake/report.html"


def test_a_check_without_evidently_writes_the_summary_only_as_valid_json(tmp_path):
    import json

    from pipelines.drift.check import DriftCheck
    from pipelines.drift.decision import DriftResult

    lake = Lake(str(tmp_path))
    check = DriftCheck(DriftResult(3, 100, notes=("too few rows",)))
    summary = {"run_id": "r:1", "roc_auc": float("nan"), "verdict": {"retrain": False, "reasons": ["x"]}}
    paths = drift.write_reports(lake, "r:1", drift.rendered(check), summary)
    assert set(paths) == {"summary"} and paths["summary"].endswith("reports/drift/run=r_1/summary.json")
    written = json.loads(open(paths["summary"]).read())
    assert written["roc_auc"] is None and written["report"] == paths


def labelled(schema, days: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    stamps = pd.to_datetime(np.sort(start + rng.random(days * 100) * days * 86400), unit="s", utc=True)
    frame = events(schema, [t.isoformat() for t in stamps])
    frame[schema.target] = (rng.random(len(frame)) < 0.3).astype("int8")
    proba = 1 / (1 + np.exp(-(frame[schema.target].to_numpy() * 1.5 + rng.normal(0, 1, len(frame)))))
    return frame, proba


def reference_of(tags: dict[str, str]):
    from pipelines.drift.reference import Champion, Reference

    champion = Champion("card-fraud", "3", "run-3", {}, {"test_roc_auc": 0.8}, tags)
    return Reference(champion, pd.DataFrame(), "md5", "cache")


def test_window_performance_judges_the_labelled_rows_against_the_gate_record(demo_params):
    import json

    current, proba = labelled(demo_params.schema, days=10)
    tags = {
        "flywheel.gate.candidate": json.dumps({"roc_auc": 0.86, "pr_auc": 0.6}),
        "flywheel.gate.evaluated": json.dumps({"roc_auc": {"se": 0.01}}),
    }
    performance = drift.window_performance(demo_params, reference_of(tags), current, lambda rows: proba)
    assert performance is not None and performance.difference is not None
    assert performance.evaluated.value == 0.86 and performance.evaluated.se == 0.01
    assert performance.rows == 1000 and performance.difference.block == demo_params.promote.block
    assert not performance.dropped  # the same skill as evaluated


def test_window_performance_without_labels_or_a_champion_that_scores(demo_params):
    current, proba = labelled(demo_params.schema, days=10)
    ref = reference_of({})
    assert drift.window_performance(demo_params, ref, current, None) is None
    unlabelled = current.assign(**{demo_params.schema.target: np.nan})
    assert drift.window_performance(demo_params, ref, unlabelled, lambda rows: proba) is None

    def broken(rows: pd.DataFrame) -> np.ndarray:
        raise ValueError("unknown category")

    performance = drift.window_performance(demo_params, ref, current, broken)
    assert performance is not None and "could not score the window: unknown category" in performance.note
    assert (
        performance.evaluated is not None
        and performance.evaluated.source == "test_roc_auc of its training run"
    )


def test_describe_names_the_triggers_and_the_performance_check():
    summary = {
        "run_id": "r",
        "window": {"start": "2026-11-20", "end": "2026-11-21"},
        "rows_current": 900,
        "rows_reference": 2000,
        "champion": "models:/m/1",
        "drift_share": 0.0,
        "columns": [],
        "performance": {"description": "champion roc_auc 0.7000 on 900 labelled rows vs 0.8600 evaluated"},
        "report": {"html": "/lake/report.html"},
        "verdict": {"retrain": True, "reasons": ["champion roc_auc 0.7000"], "triggers": ["performance"]},
    }
    lines = drift.describe(summary)
    assert "champion roc_auc 0.7000 on 900 labelled rows vs 0.8600 evaluated" in lines
    assert lines[-2] == "verdict: retrain (triggers: performance): champion roc_auc 0.7000"


def test_window_performance_judges_the_live_predictions_when_there_are_some(demo_params):
    current, proba = labelled(demo_params.schema, days=10)
    worse = 1 / (1 + np.exp(-np.random.default_rng(5).normal(0, 1, len(current))))  # no skill at all
    live = current.assign(score=worse)
    ref = reference_of({})
    rescored = drift.window_performance(demo_params, ref, current, lambda rows: proba)
    judged = drift.window_performance(demo_params, ref, current, lambda rows: proba, live=live)
    assert rescored is not None and judged is not None
    assert judged.source == "live predictions of models:/card-fraud/3 with their labels"
    assert rescored.source == "the window rescored by the champion"
    assert judged.window is not None and judged.window < 0.6 < rescored.window  # the served scores are judged
    assert judged.dropped
