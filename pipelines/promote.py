"""Promote: register the trained model and move the ``champion`` alias only when the gate passes.

The gate is :func:`decide`, a small pure function. The candidate and the
current champion are scored on the same held-out rows; before the alias moves,
the registered model is loaded back in a fresh process and asked to predict.
Every decision, promoted or not, is recorded as tags on the model version.
Only MLflow 3 aliases are used (``champion``, ``challenger``,
``previous_champion``), never the deprecated stages.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Params, PromoteConfig, Schema
from pipelines.settings import Settings

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
MODEL_JSON = Path("models/model/model.json")
TEST_ROWS = Path("data/split/test.parquet")


class PromoteError(RuntimeError):
    """Promotion cannot be decided or carried out."""


@dataclass(frozen=True)
class Scores:
    """A model's metrics on the held-out rows."""

    roc_auc: float
    pr_auc: float

    def get(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class Decision:
    """The gate's verdict with its reason."""

    promote: bool
    reason: str
    forced: bool = False


def decide(candidate: Scores, champion: Scores | None, policy: PromoteConfig,
           force: bool = False, force_reason: str | None = None) -> Decision:
    """Promote when the candidate meets the floors and is at least as good as the champion within tolerance."""
    if force:
        if not (force_reason or "").strip():
            raise PromoteError("force_promote=true needs a non-empty reason; expected force_reason='why'")
        return Decision(True, f"forced: {force_reason.strip()}", forced=True)
    floors = {"roc_auc": policy.min_roc_auc, "pr_auc": policy.min_pr_auc}
    for metric, floor in floors.items():
        if candidate.get(metric) < floor:
            return Decision(False, f"candidate {metric} {candidate.get(metric):.4f} is below the floor {floor}")
    if champion is None:
        return Decision(True, "no champion yet; candidate meets the floors")
    metric, cand, champ = policy.metric, candidate.get(policy.metric), champion.get(policy.metric)
    if cand + policy.tolerance < champ:
        return Decision(False, f"candidate {metric} {cand:.4f} trails champion {champ:.4f} "
                               f"by more than the tolerance {policy.tolerance}")
    return Decision(True, f"candidate {metric} {cand:.4f} vs champion {champ:.4f} (tolerance {policy.tolerance})")


def score(probabilities: np.ndarray, labels: np.ndarray) -> Scores:
    """ROC-AUC and PR-AUC of predicted probabilities."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return Scores(roc_auc=float(roc_auc_score(labels, probabilities)),
                  pr_auc=float(average_precision_score(labels, probabilities)))


def score_model(model_uri: str, rows: pd.DataFrame, schema: Schema) -> Scores:
    """Load a model through MLflow's pyfunc flavour and score it on raw rows."""
    import mlflow

    model = mlflow.pyfunc.load_model(model_uri)
    predicted = model.predict(rows[list(schema.feature_names)])
    return score(np.asarray(predicted["probability"], dtype=float), rows[schema.target].to_numpy())


def check_in_fresh_process(model_uri: str, sample: pd.DataFrame, settings: Settings,
                           max_latency_ms: float) -> dict[str, Any]:
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
    env = {**__import__("os").environ, **settings.as_env()}
    proc = subprocess.run([sys.executable, "-c", code, model_uri], input=sample_json, text=True,
                          capture_output=True, env=env, timeout=600)
    if proc.returncode != 0:
        return {"ok": False, "reason": f"model {model_uri} failed to load or predict: {proc.stderr[-2000:]}"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = result["rows"] == len(sample) and result["finite"] and result["latency_ms"] <= max_latency_ms
    reason = "loads and predicts" if ok else (
        f"predicted {result['rows']} of {len(sample)} rows, probabilities in [0,1]: {result['finite']}, "
        f"latency {result['latency_ms']:.0f} ms (budget {max_latency_ms:.0f} ms)")
    return {"ok": ok, "reason": reason, **result}


def _client(settings: Settings):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri)


def alias_version(client, name: str, alias: str) -> str | None:
    """The version behind an alias, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def register(client, name: str, run_id: str, model_uri: str, tags: dict[str, str]) -> tuple[str, bool]:
    """The registered version of this run's model, registering it if new; returns (version, created)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="Flywheel model, promoted by the evaluation gate.")
    existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if existing:
        return str(existing[0].version), False
    version = mlflow.register_model(model_uri, name, tags=tags)
    return str(version.version), True


def run(params: Params, settings: Settings, workspace: Path, force: bool = False,
        force_reason: str | None = None, trigger: str = "manual") -> dict:
    """Register the workspace's model, run the gate, move aliases, record the decision."""
    if force and not (force_reason or "").strip():
        raise PromoteError("force_promote=true needs a non-empty reason; expected force_reason='why'")
    meta_path = workspace / MODEL_JSON
    if not meta_path.exists():
        raise PromoteError(f"no trained model at {meta_path}; expected the train stage to have run")
    meta = json.loads(meta_path.read_text())
    name = params.promote.model_name
    client = _client(settings)
    version, created = register(client, name, meta["mlflow_run_id"], meta["model_uri"],
                                tags={"flywheel.trigger": trigger})
    champion = alias_version(client, name, CHAMPION)
    summary = {"model_name": name, "version": version, "registered_now": created,
               "previous_champion": champion, "mlflow_run_id": meta["mlflow_run_id"]}
    if champion == version:
        return {**summary, "promoted": False, "champion": champion,
                "reason": f"version {version} is already the champion (no new model)"}
    client.set_registered_model_alias(name, CHALLENGER, version)
    decision, details = _gate(params, settings, workspace, name, version, champion, force, force_reason)
    _record(client, name, version, decision, details, trigger)
    if decision.promote:
        if champion is not None:
            client.set_registered_model_alias(name, PREVIOUS, champion)
        client.set_registered_model_alias(name, CHAMPION, version)
    return {**summary, **details, "promoted": decision.promote, "forced": decision.forced,
            "reason": decision.reason, "champion": version if decision.promote else champion}


def _gate(params: Params, settings: Settings, workspace: Path, name: str, version: str,
          champion: str | None, force: bool, force_reason: str | None) -> tuple[Decision, dict]:
    rows = pd.read_parquet(workspace / TEST_ROWS)
    candidate = score_model(f"models:/{name}/{version}", rows, params.schema)
    champ_scores, champ_note = None, None
    if champion is not None:
        try:
            champ_scores = score_model(f"models:/{name}/{champion}", rows, params.schema)
        except Exception as exc:  # a champion that cannot score today's rows must not block the gate
            champ_note = f"champion v{champion} could not score the test rows: {exc}"
    decision = decide(candidate, champ_scores, params.promote, force, force_reason)
    details: dict[str, Any] = {"candidate": asdict(candidate), "champion_scores":
                               asdict(champ_scores) if champ_scores else None, "test_rows": len(rows)}
    if champ_note:
        details["champion_note"] = champ_note
    if decision.promote:
        start = time.perf_counter()
        sample = rows[list(params.schema.feature_names)].head(100)
        check = check_in_fresh_process(f"models:/{name}/{version}", sample,
                                       settings, params.promote.max_latency_ms)
        details["infra_check"] = {**check, "wall_ms": (time.perf_counter() - start) * 1000}
        if not check["ok"]:
            decision = Decision(False, f"infra check failed: {check['reason']}", forced=decision.forced)
    return decision, details


def _record(client, name: str, version: str, decision: Decision, details: dict, trigger: str) -> None:
    import os

    tags = {
        "flywheel.gate.decision": "promoted" if decision.promote else "rejected",
        "flywheel.gate.reason": decision.reason,
        "flywheel.gate.forced": str(decision.forced).lower(),
        "flywheel.gate.decided_at": datetime.now(UTC).isoformat(),
        "flywheel.gate.candidate": json.dumps(details.get("candidate")),
        "flywheel.gate.champion": json.dumps(details.get("champion_scores")),
        "flywheel.trigger": trigger,
    }
    for key, env in (("airflow.dag_id", "AIRFLOW_CTX_DAG_ID"), ("airflow.run_id", "AIRFLOW_CTX_DAG_RUN_ID")):
        if os.environ.get(env):
            tags[key] = os.environ[env]
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
