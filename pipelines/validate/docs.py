"""Data Docs reachable by URL: the HTML of a validation run, logged as artifacts of an MLflow run.

The lake keeps the Data Docs (``reports/validation/<partition>/data_docs/``) for the record; MLflow's
artifact view is what a person opens from the Airflow UI (the validate task's "GX Data Docs" link). The
run lives in the monitoring experiment (``drift.experiment``), tagged ``flywheel.stage=validate``, beside
the drift checks: both judge the data, not a model.
"""

from __future__ import annotations

import tempfile
from typing import Any

from pipelines.common.config import Params
from pipelines.common.lake import Lake, safe_run_id
from pipelines.common.settings import Settings

DOCS_ARTIFACTS = "data_docs"


def docs_folders(lake: Lake, summary: dict[str, Any]) -> dict[str, str]:
    """``{partition suffix: Data Docs folder in the lake}`` of every judged partition that has Data Docs."""
    root = lake.path("reports", "validation") + "/"
    folders = {}
    for part in summary.get("partitions", []):
        index = part.get("docs_index")
        if index and index.startswith(root):
            folder = index.rsplit("/", 1)[0]
            folders[folder[len(root) :].removesuffix("/data_docs")] = folder
    return folders


def log_data_docs(params: Params, settings: Settings, summary: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Log each partition's Data Docs to one MLflow run; its ids and the first index page's artifact path.

    Returns ``{}`` when no partition was judged (nothing to show).
    """
    import mlflow

    from pipelines.common.tracking import ensure_experiment

    lake = Lake(settings.lake_root(params))
    folders = docs_folders(lake, summary)
    if not folders:
        return {}
    experiment_id = ensure_experiment(settings, params.drift.experiment)
    tags = {"flywheel.stage": "validate", "flywheel.validate.verdict": summary["verdict"]}
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"validate-{safe_run_id(run_id)}", tags=tags
    ) as active:
        mlflow.log_metrics(
            {"validated_rows": summary["validated_rows"], "rejected_rows": summary["rejected_rows"]}
        )
        for suffix, folder in sorted(folders.items()):
            with tempfile.TemporaryDirectory() as tmp:
                lake.fs.get(f"{folder}/", tmp, recursive=True)
                mlflow.log_artifacts(tmp, f"{DOCS_ARTIFACTS}/{suffix}")
    first = sorted(folders)[0]
    return {
        "mlflow_run_id": active.info.run_id,
        "mlflow_experiment_id": experiment_id,
        "docs_artifact": f"{DOCS_ARTIFACTS}/{first}/index.html",
    }
