"""Lineage: from a registered model back to the data it learned from, and a rebuild of it.

The chain is read from what the pipeline recorded, never guessed: the model
version and its MLflow run (git commit, Airflow dag/run, parameters), the
workspace commit with its ``dvc.lock`` hashes, the snapshot window, the
validated partitions with their GX results, and the landing manifests with the
source files (path and sha256), S3 keys and ETags, or Kafka offsets.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.common import tracking
from pipelines.common.config import TASK_METRICS, Params
from pipelines.common.errors import FlywheelError
from pipelines.common.lake import MANIFEST, Lake
from pipelines.common.settings import Settings
from pipelines.promote.registry import WORKSPACE_COMMIT
from pipelines.workspace import command_env, dvc_executable, lock_at_commit

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

REPRODUCED_METRICS = {"binary": ("roc_auc", "pr_auc", "f1", "brier")}  # other tasks: their TASK_METRICS
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


class LineageError(FlywheelError):
    """A model reference cannot be resolved or its recorded inputs cannot be found."""


def parse_ref(ref: str, default_name: str) -> tuple[str, str | None, str | None]:
    """``models:/name/3``, ``models:/name@champion``, ``3`` or ``champion`` → (name, version, alias)."""
    match = _URI.match(ref)
    if match:
        return match["name"], match["version"], match["alias"]
    if ref.isdigit():
        return default_name, ref, None
    if re.fullmatch(r"[\w-]+", ref):
        return default_name, None, ref
    raise LineageError(
        f"model reference {ref!r}: expected models:/<name>/<version>, models:/<name>@<alias>, "
        "a version number or an alias such as champion"
    )


def resolve(client: MlflowClient, ref: str, default_name: str) -> ModelVersion:
    """The ModelVersion a reference points at."""
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_ref(ref, default_name)
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        if version is None:
            raise LineageError(f"model reference {ref!r} names neither a version nor an alias")
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise LineageError(f"model reference {ref!r} not found in the registry: {exc.message}") from None


def _run_id(version: ModelVersion) -> str:
    """The MLflow run that trained ``version``; :class:`LineageError` when the registry records none."""
    if version.run_id is None:
        raise LineageError(
            f"{version.name} v{version.version} has no MLflow run id; expected the run that trained it"
        )
    return version.run_id


def window_of(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """The snapshot window the run trained on (its ``lineage/window.json`` artifact, else its tag)."""
    try:
        local = client.download_artifacts(run_id, "lineage/window.json", tempfile.mkdtemp(prefix="flywheel-"))
        window: dict[str, Any] = json.loads(Path(local).read_text())
        return window
    except Exception:  # older runs carry only the (possibly truncated) tag
        tag = client.get_run(run_id).data.tags.get("flywheel.data_window")
        try:
            return json.loads(tag) if tag else {}
        except json.JSONDecodeError:
            return {"summary": tag}


def partition_chain(lake: Lake, validated: str) -> dict[str, Any]:
    """A validated partition with its GX result and the landing manifest (sources) it came from."""
    manifest = lake.read_json(f"{validated}/{MANIFEST}") or {}
    landing_path = manifest.get("landing") or manifest.get("landing_partition")
    landing = lake.read_json(f"{landing_path}/{MANIFEST}") if landing_path else None
    result = lake.read_json(manifest["result_path"]) if manifest.get("result_path") else None
    sources = (landing or {}).get("files") or (landing or {}).get("objects") or (landing or {}).get("offsets")
    return {
        "validated": validated,
        "rows": manifest.get("rows"),
        "gx_success": manifest.get("gx_success"),
        "gx_result": manifest.get("result_path"),
        "gx_statistics": (result or {}).get("statistics"),
        "landing": landing_path,
        "sources": sources,
    }


def trace(params: Params, settings: Settings, ref: str) -> dict[str, Any]:
    """The whole chain for a model reference, as data."""
    client = tracking.client(settings)
    version = resolve(client, ref, params.promote.model_name)
    run_id = _run_id(version)
    run = client.get_run(run_id)
    tags, lake = run.data.tags, Lake(settings.lake_root(params))
    window = window_of(client, run_id)
    commit = version.tags.get(WORKSPACE_COMMIT)
    return {
        "model": {
            "name": version.name,
            "version": str(version.version),
            "aliases": sorted(version.aliases),
            "gate": version.tags.get("flywheel.gate.reason"),
            "trigger": version.tags.get("flywheel.trigger"),
        },
        "run": {
            "id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "git_commit": tags.get("flywheel.git_commit"),
            "airflow": {"dag_id": tags.get("airflow.dag_id"), "run_id": tags.get("airflow.run_id")},
            "metrics": {k: v for k, v in run.data.metrics.items() if k.startswith("test_")},
        },
        "workspace_commit": commit,
        "dvc": lock_at_commit(settings.workspace, commit)
        or {k.removeprefix("flywheel.dvc."): v for k, v in tags.items() if k.startswith("flywheel.dvc.")},
        "window": {k: window.get(k) for k in ("window_start", "window_end", "rows", "positives")},
        "partitions": [partition_chain(lake, p) for p in window.get("partitions", []) if lake.fs.exists(p)],
    }


def render(chain: dict[str, Any]) -> str:
    """The chain as an indented tree a person reads top-down: model → run → data → sources."""
    model, run, window = chain["model"], chain["run"], chain["window"]
    lines = [
        f"model {model['name']} v{model['version']} {model['aliases'] or ''}",
        f"  gate: {model['gate']}  (trigger: {model['trigger']})",
        f"  └─ MLflow run {run['id']}  test metrics {_short(run['metrics'])}",
        f"     git commit {run['git_commit']}; "
        f"Airflow {run['airflow']['dag_id']} / {run['airflow']['run_id']}",
        f"     └─ DVC workspace commit {chain['workspace_commit']}",
    ]
    lines += [f"        {path}: {md5}" for path, md5 in sorted(chain["dvc"].items())]
    lines.append(
        f"        └─ window [{window['window_start']}, {window['window_end']}): "
        f"{window['rows']} events"
        + (f", {window['positives']} positive" if window.get("positives") is not None else "")
    )
    for part in chain["partitions"]:
        lines.append(
            f"           ├─ validated {part['validated']} ({part['rows']} rows, "
            f"GX success {part['gx_success']}, result {part['gx_result']})"
        )
        lines.append(f"           │  └─ landing {part['landing']}")
        for source in (part["sources"] or [])[:20]:
            lines.append(f"           │     · {_source(source)}")
    return "\n".join(lines)


def _short(metrics: dict[str, float]) -> str:
    return (
        ", ".join(
            f"{k.removeprefix('test_')} {v:.4f}"
            for k, v in sorted(metrics.items())
            if k in ("test_roc_auc", "test_pr_auc", "test_f1")
        )
        or "-"
    )


def _source(source: Any) -> str:
    if not isinstance(source, dict):
        return str(source)
    if "topic" in source:
        return (
            f"kafka {source['topic']}[{source.get('partition')}] offsets {source.get('first')}.."
            f"{source.get('last')} ({source.get('consumed', '?')} consumed, "
            f"{source.get('landed', '?')} landed)"
        )
    where = source.get("path") or source.get("key")
    digest = source.get("sha256") or source.get("etag") or source.get("ETag")
    return f"{where} ({digest}, {source.get('consumed', '?')} records)"


def reproduce(params: Params, settings: Settings, ref: str) -> dict[str, Any]:
    """Rebuild a model version from its recorded workspace commit and report the metric differences.

    The workspace is cloned at the recorded commit, the snapshot is pulled from
    the DVC remote, and featurize → train → evaluate are forced to run again
    (a new MLflow run, tagged ``flywheel.reproduces``).
    """
    client = tracking.client(settings)
    version = resolve(client, ref, params.promote.model_name)
    commit = version.tags.get(WORKSPACE_COMMIT)
    if not commit:
        raise LineageError(
            f"{version.name} v{version.version} has no recorded workspace commit "
            "(flywheel.workspace_commit); expected a version trained by flywheel_training or repro"
        )
    original = client.get_run(_run_id(version)).data.metrics
    with tempfile.TemporaryDirectory(prefix="flywheel-reproduce-") as tmp:
        clone = _checkout(settings, commit, Path(tmp) / "workspace")
        for stage in ("featurize", "train", "evaluate"):
            _dvc(settings, clone, "repro", "--single-item", "--force", stage)
        rebuilt = json.loads((clone / "metrics" / "evaluate.json").read_text())
        new_run = json.loads((clone / "models" / "model" / "model.json").read_text())["mlflow_run_id"]
    client.set_tag(new_run, "flywheel.reproduces", f"{version.name}/{version.version}")
    diff = {
        m: {
            "original": original.get(f"test_{m}"),
            "reproduced": rebuilt.get(m),
            "difference": (rebuilt[m] - original[f"test_{m}"])
            if rebuilt.get(m) is not None and original.get(f"test_{m}") is not None
            else None,
        }
        for m in REPRODUCED_METRICS.get(params.schema.task, TASK_METRICS[params.schema.task])
    }
    return {
        "model_name": version.name,
        "version": str(version.version),
        "workspace_commit": commit,
        "original_run": version.run_id,
        "reproduced_run": new_run,
        "metrics": diff,
    }


def _checkout(settings: Settings, commit: str, target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(settings.workspace), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "-q", commit], check=True)
    (target / "pipelines").symlink_to(settings.project / "pipelines", target_is_directory=True)
    _dvc(settings, target, "pull", "-q", "data/snapshot/events.parquet")
    return target


def _dvc(settings: Settings, cwd: Path, *args: str) -> None:
    env = {**command_env(settings), "FLYWHEEL_REPRODUCING": "1"}
    proc = subprocess.run([dvc_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LineageError(
            f"`dvc {' '.join(args)}` failed in {cwd}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
