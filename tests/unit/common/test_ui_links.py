"""The MLflow UI URLs the Airflow UI's links open: from a base URL and ids, None when a part is missing."""

from __future__ import annotations

import pytest

from pipelines.common.ui_links import (
    UiLinkError,
    mlflow_artifact_url,
    mlflow_model_version_url,
    mlflow_run_url,
    ui_base,
)

BASE = "http://mlflow.internal:5000/"


@pytest.mark.parametrize(
    ("base", "run_id", "expected"),
    [
        (BASE, "abc123", "http://mlflow.internal:5000/#/runs/abc123"),
        ("https://m.example/mlflow", "r1", "https://m.example/mlflow/#/runs/r1"),
        (None, "abc123", None),
        (BASE, None, None),
        (BASE, "", None),
    ],
)
def test_run_url(base, run_id, expected):
    assert mlflow_run_url(base, run_id) == expected


@pytest.mark.parametrize(
    ("name", "version", "expected"),
    [
        ("flywheel-model", "7", "http://mlflow.internal:5000/#/models/flywheel-model/versions/7"),
        ("fraud model", 8, "http://mlflow.internal:5000/#/models/fraud%20model/versions/8"),
        ("flywheel-model", None, None),
        (None, "7", None),
    ],
)
def test_model_version_url(name, version, expected):
    assert mlflow_model_version_url(BASE, name, version) == expected


@pytest.mark.parametrize(
    ("experiment", "run_id", "path", "expected"),
    [
        (
            "3",
            "r9",
            "drift/report.html",
            "http://mlflow.internal:5000/#/experiments/3/runs/r9/artifactPath/drift/report.html",
        ),
        (
            "3",
            "r9",
            "data_docs/source=files/run=manual__2026-01-01T00:00:00+00:00/index.html",
            "http://mlflow.internal:5000/#/experiments/3/runs/r9/artifactPath/"
            "data_docs/source%3Dfiles/run%3Dmanual__2026-01-01T00%3A00%3A00%2B00%3A00/index.html",
        ),
        (None, "r9", "drift/report.html", None),
        ("3", "r9", None, None),
    ],
)
def test_artifact_url(experiment, run_id, path, expected):
    assert mlflow_artifact_url(BASE, experiment, run_id, path) == expected


@pytest.mark.parametrize("url", ["sqlite:///mlflow.db", "file:///tmp/mlruns", "mlflow.internal:5000"])
def test_a_base_a_browser_cannot_open_is_refused(url):
    with pytest.raises(UiLinkError, match=r"is not an http\(s\) URL"):
        ui_base(url)
