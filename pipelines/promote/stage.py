"""Promote: register the trained model and move the ``champion`` alias only when the gate passes.

The gate is :func:`decide`, a small pure function. The candidate and the
current champion are scored on the same held-out rows; before the alias moves,
the registered model is loaded back in a fresh process and asked to predict.
Every decision, promoted or not, is recorded as tags on the model version.
Only MLflow 3 aliases are used (``champion``, ``challenger``,
``previous_champion``, see :mod:`pipelines.promote.registry`), never the deprecated stages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.common import tracking
from pipelines.common.config import Params, PromoteConfig, Schema
from pipelines.common.errors import FlywheelError
from pipelines.common.settings import Settings
from pipelines.evaluate.metrics import metric as metric_value
from pipelines.promote import registry
from pipelines.promote.registry import CHALLENGER, CHAMPION, PREVIOUS
from pipelines.workspace.paths import MODEL_JSON, split_file


class PromoteError(FlywheelError):
    """Promotion cannot be decided or carried out."""


@dataclass(frozen=True)
class Scores:
    """A model's metrics on the held-out rows."""

    roc_auc: float
    pr_auc: float

    def get(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class Interval:
    """A bootstrap confidence interval of ``candidate - champion`` on one metric."""

    mean: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class Decision:
    """The gate's verdict with its reason."""

    promote: bool
    reason: str
    forced: bool = False


def decide(
    candidate: Scores,
    champion: Scores | None,
    policy: PromoteConfig,
    force: bool = False,
    force_reason: str | None = None,
    difference: Interval | None = None,
) -> Decision:
    """Promote when the candidate meets the floors and beats the champion by the margin, with confidence.

    With a champion, ``difference`` (the bootstrap interval of candidate minus
    champion on ``policy.metric``) decides: its lower bound must reach
    ``policy.min_improvement``. Without an interval the point difference is used.
    """
    if force:
        if not (force_reason or "").strip():
            raise PromoteError("force_promote=true needs a non-empty reason; expected force_reason='why'")
        return Decision(True, f"forced: {force_reason.strip()}", forced=True)
    floors = {"roc_auc": policy.min_roc_auc, "pr_auc": policy.min_pr_auc}
    for metric, floor in floors.items():
        if candidate.get(metric) < floor:
            return Decision(
                False, f"candidate {metric} {candidate.get(metric):.4f} is below the floor {floor}"
            )
    if champion is None:
        return Decision(True, "no champion yet; candidate meets the floors")
    metric, cand, champ = policy.metric, candidate.get(policy.metric), champion.get(policy.metric)
    low = difference.low if difference else cand - champ
    shown = (
        f"{difference.confidence:.0%} CI of the difference [{difference.low:+.4f}, {difference.high:+.4f}]"
        if difference
        else f"difference {cand - champ:+.4f}"
    )
    verdict = f"candidate {metric} {cand:.4f} vs champion {champ:.4f}: {shown}"
    if low < policy.min_improvement:
        return Decision(False, f"{verdict} does not clear the margin {policy.min_improvement:+.4f}")
    return Decision(True, f"{verdict} clears the margin {policy.min_improvement:+.4f}")


def bootstrap_difference(
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    metric: str,
    rounds: int,
    confidence: float,
    seed: int = 0,
    max_rows: int = 20_000,
) -> Interval:
    """Paired bootstrap of ``metric(candidate) - metric(champion)`` over the same resampled rows.

    Large test sets are first thinned to ``max_rows`` rows (a seeded, stratified
    sample) so the gate stays fast; resamples holding one class only are skipped.
    """
    rng = np.random.default_rng(seed)
    rows = _stratified(labels, max_rows, rng)
    labels, candidate, champion = labels[rows], candidate[rows], champion[rows]
    diffs = []
    for _ in range(rounds):
        pick = rng.integers(0, len(labels), len(labels))
        if labels[pick].min() == labels[pick].max():
            continue
        diffs.append(
            metric_value(metric, labels[pick], candidate[pick])
            - metric_value(metric, labels[pick], champion[pick])
        )
    if not diffs:
        raise PromoteError(
            f"bootstrap of {metric} needs both classes in the test rows; got {len(labels)} rows"
        )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return Interval(float(np.mean(diffs)), float(low), float(high), confidence)


def _stratified(labels: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if len(labels) <= max_rows:
        return np.arange(len(labels))
    keep = []
    for value in np.unique(labels):
        where = np.flatnonzero(labels == value)
        keep.append(rng.choice(where, max(1, round(max_rows * len(where) / len(labels))), replace=False))
    return np.sort(np.concatenate(keep))


def score(probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    """ROC-AUC and PR-AUC of predicted probabilities."""
    return Scores(
        roc_auc=metric_value("roc_auc", labels, probabilities),
        pr_auc=metric_value("pr_auc", labels, probabilities),
    )


def predict_model(model_uri: str, rows: pd.DataFrame, schema: Schema) -> np.ndarray:
    """Load a model through MLflow's pyfunc flavour; its probabilities for raw rows."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    predicted = model.predict(rows[list(schema.feature_names)])
    return np.asarray(predicted["probability"], dtype=float)


def check_in_fresh_process(
    model_uri: str, sample: pd.DataFrame, settings: Settings, max_latency_ms: float
) -> dict[str, Any]:
    """Load the model in a new Python process and predict ``sample``: it loads, it answers, in time."""
    sample_json = sample.to_json(orient="records", date_format="iso")
    code = (
        "import json, sys, time, pandas as pd, mlflow\n"
        "rows = pd.DataFrame(json.loads(sys.stdin.read()))\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "start = time.perf_counter(); out = model.predict(rows)\n"
        "print(json.dumps({'latency_ms': (time.perf_counter() - start) * 1000, 'rows': len(out),"
        " 'finite': bool(pd.Series(out['probability']).between(0, 1).all())}))\n"
    )
    env = {**os.environ, **settings.as_env()}
    proc = subprocess.run(
        [sys.executable, "-c", code, model_uri],
        input=sample_json,
        text=True,
        capture_output=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        return {"ok": False, "reason": f"model {model_uri} failed to load or predict: {proc.stderr[-2000:]}"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = result["rows"] == len(sample) and result["finite"] and result["latency_ms"] <= max_latency_ms
    reason = (
        "loads and predicts"
        if ok
        else (
            f"predicted {result['rows']} of {len(sample)} rows, probabilities in [0,1]: {result['finite']}, "
            f"latency {result['latency_ms']:.0f} ms (budget {max_latency_ms:.0f} ms)"
        )
    )
    return {"ok": ok, "reason": reason, **result}


def run(
    params: Params,
    settings: Settings,
    workspace: Path,
    force: bool = False,
    force_reason: str | None = None,
    trigger: str = "manual",
) -> dict:
    """Register the workspace's model, run the gate, move aliases, record the decision.

    The ``champion`` alias moves last, after the decision is recorded, so a
    failure anywhere before leaves the champion as it was.
    """
    if force and not (force_reason or "").strip():
        raise PromoteError("force_promote=true needs a non-empty reason; expected force_reason='why'")
    meta_path = workspace / MODEL_JSON
    if not meta_path.exists():
        raise PromoteError(f"no trained model at {meta_path}; expected the train stage to have run")
    meta = json.loads(meta_path.read_text())
    name = params.promote.model_name
    client = tracking.client(settings)
    version, created = register(client, name, meta, trigger)
    champion = registry.alias_version(client, name, CHAMPION)
    summary = {
        "model_name": name,
        "version": version,
        "registered_now": created,
        "previous_champion": champion,
        "mlflow_run_id": meta["mlflow_run_id"],
    }
    if champion == version:
        return {
            **summary,
            "promoted": False,
            "champion": champion,
            "reason": f"version {version} is already the champion (no new model)",
        }
    registry.move_alias(client, name, CHALLENGER, version, f"new candidate ({trigger})")
    decision, details = _gate(params, settings, workspace, name, version, champion, force, force_reason)
    _record(client, name, version, decision, details, trigger)
    if decision.promote:
        if champion is not None:
            registry.move_alias(client, name, PREVIOUS, champion, f"replaced by v{version}")
        registry.move_alias(client, name, CHAMPION, version, decision.reason)
    return {
        **summary,
        **details,
        "promoted": decision.promote,
        "forced": decision.forced,
        "reason": decision.reason,
        "champion": version if decision.promote else champion,
    }


def register(client, name: str, meta: dict, trigger: str) -> tuple[str, bool]:
    """The registered version of this run's model, registering it if new; returns (version, created).

    A new version carries the run's lineage tags and a description of where it came from.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Flywheel model, promoted by the evaluation gate.")
    run_id = meta["mlflow_run_id"]
    existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if existing:
        return str(existing[0].version), False
    run = client.get_run(run_id)
    lineage = {k: v for k, v in run.data.tags.items() if k.startswith(("flywheel.", "airflow."))}
    version = mlflow.register_model(meta["model_uri"], name, tags={**lineage, "flywheel.trigger": trigger})
    client.update_model_version(
        name,
        version.version,
        description=(
            f"Trained by MLflow run {run_id} ({meta.get('epochs_run', '?')} epochs, best epoch "
            f"{meta.get('best_epoch', '?')}, on {meta.get('device', '?')}); trigger: {trigger}. "
            f"Data window: {run.data.tags.get('flywheel.data_window', 'unknown')[:300]}"
        ),
    )
    return str(version.version), True


def _gate(
    params: Params,
    settings: Settings,
    workspace: Path,
    name: str,
    version: str,
    champion: str | None,
    force: bool,
    force_reason: str | None,
) -> tuple[Decision, dict]:
    rows = pd.read_parquet(workspace / split_file("test"))
    labels = rows[params.schema.target].to_numpy()
    cand_proba = predict_model(f"models:/{name}/{version}", rows, params.schema)
    candidate, champ_scores, interval, details = score(cand_proba, labels), None, None, {}
    if champion is not None:
        try:
            champ_proba = predict_model(f"models:/{name}/{champion}", rows, params.schema)
        except Exception as exc:  # a champion that cannot score today's rows must not block the gate
            details["champion_note"] = f"champion v{champion} could not score the test rows: {exc}"
        else:
            champ_scores = score(champ_proba, labels)
            policy = params.promote
            interval = bootstrap_difference(
                labels, cand_proba, champ_proba, policy.metric, policy.bootstrap_rounds, policy.confidence
            )
    decision = decide(candidate, champ_scores, params.promote, force, force_reason, interval)
    details.update(
        candidate=asdict(candidate),
        champion_scores=asdict(champ_scores) if champ_scores else None,
        difference=asdict(interval) if interval else None,
        test_rows=len(rows),
    )
    if decision.promote:
        details["infra_check"] = _infra_check(params, settings, f"models:/{name}/{version}", rows)
        if not details["infra_check"]["ok"]:
            decision = Decision(
                False, f"infra check failed: {details['infra_check']['reason']}", forced=decision.forced
            )
    return decision, details


def _infra_check(params: Params, settings: Settings, model_uri: str, rows: pd.DataFrame) -> dict:
    start = time.perf_counter()
    sample = rows[list(params.schema.feature_names)].head(100)
    check = check_in_fresh_process(model_uri, sample, settings, params.promote.max_latency_ms)
    return {**check, "wall_ms": (time.perf_counter() - start) * 1000}


def _record(client, name: str, version: str, decision: Decision, details: dict, trigger: str) -> None:
    tags = {
        "flywheel.gate.decision": "promoted" if decision.promote else "rejected",
        "flywheel.gate.reason": decision.reason,
        "flywheel.gate.forced": str(decision.forced).lower(),
        "flywheel.gate.decided_at": datetime.now(UTC).isoformat(),
        "flywheel.gate.candidate": json.dumps(details.get("candidate")),
        "flywheel.gate.champion": json.dumps(details.get("champion_scores")),
        "flywheel.gate.difference": json.dumps(details.get("difference")),
        "flywheel.trigger": trigger,
    }
    for key, env in (("airflow.dag_id", "AIRFLOW_CTX_DAG_ID"), ("airflow.run_id", "AIRFLOW_CTX_DAG_RUN_ID")):
        if os.environ.get(env):
            tags[key] = os.environ[env]
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
