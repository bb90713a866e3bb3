"""Promote: register the trained model and move the ``champion`` alias only when the gate passes.

:func:`run` is the edge. The candidate and the current champion are scored on
the same held-out rows and the pure gate (:mod:`.gate`) decides; before the
alias moves, the registered model is loaded back in a fresh process and asked
to predict. Every decision, promoted or not, is recorded as tags on the model
version. Only MLflow 3 aliases are used (``champion``, ``challenger``,
``previous_champion``, see :mod:`.registry`), never the deprecated stages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipelines.common import tracking
from pipelines.common.config import Params, Schema
from pipelines.common.settings import Settings
from pipelines.evaluate.metrics import class_codes
from pipelines.promote import registry
from pipelines.promote.gate import Decision, PromoteError, forced_reason, judge
from pipelines.promote.registry import CHALLENGER, CHAMPION, PREVIOUS
from pipelines.workspace.paths import MODEL_JSON, split_file

INFRA_CHECK_FAILED = "infra_check_failed"  # a gate condition: the candidate passed, then failed to load back
GATE_TAGS = ("block", "blocks", "min_blocks", "rounds", "confidence", "metric")  # flywheel.gate.<key>

if TYPE_CHECKING:
    from mlflow import MlflowClient


def run(
    params: Params,
    settings: Settings,
    workspace: Path,
    force: bool = False,
    force_reason: str | None = None,
    trigger: str = "manual",
) -> dict[str, Any]:
    """Register the workspace's model, run the gate, move aliases, record the decision.

    The ``champion`` alias moves last, after the decision is recorded, so a
    failure anywhere before leaves the champion as it was.
    """
    if force:
        forced_reason(force_reason)  # refused before anything is registered
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


def register(client: MlflowClient, name: str, meta: dict[str, Any], trigger: str) -> tuple[str, bool]:
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
) -> tuple[Decision, dict[str, Any]]:
    """Score candidate and champion on the test split, let the pure gate judge, check the candidate loads.

    A champion that cannot score the rows is the gate's named condition ``champion_unscorable``
    (not promoted unless forced), never "no champion yet".
    """
    rows = pd.read_parquet(workspace / split_file("test"))
    schema, policy = params.schema, params.promote
    labels = rows[schema.target].to_numpy()
    if schema.task == "multiclass":
        labels = class_codes(labels, tuple(schema.classes or ()))
    cand_proba = predict_model(f"models:/{name}/{version}", rows, schema)
    champ_proba, note = None, None
    if champion is not None:
        try:
            champ_proba = predict_model(f"models:/{name}/{champion}", rows, schema)
        except Exception as exc:  # recorded as the gate's condition, not taken for "no champion"
            note = f"champion v{champion} could not score the test rows: {str(exc)[:500]}"
    decision = judge(
        labels,
        cand_proba,
        champ_proba,
        rows[schema.event_time],
        policy,
        force,
        force_reason,
        note,
        task=schema.task,
    )
    details = gate_details(decision, params, len(rows), note)
    if decision.promote:
        details["infra_check"] = _infra_check(params, settings, f"models:/{name}/{version}", rows)
        if not details["infra_check"]["ok"]:
            decision = replace(
                decision,
                promote=False,
                reason=f"infra check failed: {details['infra_check']['reason']}",
                condition=INFRA_CHECK_FAILED,
            )
            details["gate"]["condition"] = INFRA_CHECK_FAILED
    return decision, details


def gate_details(decision: Decision, params: Params, test_rows: int, note: str | None) -> dict[str, Any]:
    """What the stage's summary records of a decision: the scores, the interval and how it was drawn."""
    policy = params.promote
    difference = asdict(decision.difference) if decision.difference else None
    return {
        "candidate": decision.candidate.as_dict() if decision.candidate else None,
        "champion_scores": decision.champion.as_dict() if decision.champion else None,
        "difference": difference,
        "test_rows": test_rows,
        **({"champion_note": note} if note else {}),
        "gate": {
            "condition": decision.condition,
            "metric": policy.metric,
            "block": decision.block,
            "blocks": decision.blocks,
            "min_blocks": policy.min_blocks,
            "rounds": policy.bootstrap_rounds,
            "confidence": policy.confidence,
            "min_improvement": policy.min_improvement,
            "interval": difference,
            "evaluated": {m: asdict(i) for m, i in decision.evaluated.items()},
        },
    }


def predict_model(model_uri: str, rows: pd.DataFrame, schema: Schema) -> np.ndarray:
    """Load a model through MLflow's pyfunc flavour; its probabilities (predictions of a regression
    model, ``[n, k]`` class probabilities of a multiclass one) for raw rows."""
    import mlflow

    from pipelines.train import prediction_scores

    model = mlflow.pyfunc.load_model(model_uri)
    predicted = model.predict(rows[list(schema.feature_names)])
    return prediction_scores(predicted, schema.classes if schema.task == "multiclass" else None)


def _infra_check(params: Params, settings: Settings, model_uri: str, rows: pd.DataFrame) -> dict[str, Any]:
    start = time.perf_counter()
    sample = rows[list(params.schema.feature_names)].head(100)
    check = check_in_fresh_process(model_uri, sample, settings, params.promote.max_latency_ms)
    return {**check, "wall_ms": (time.perf_counter() - start) * 1000}


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
        " 'finite': bool(pd.Series(out['probability']).between(0, 1).all()) if 'probability' in out"
        " else bool(pd.Series(out['prediction']).abs().lt(float('inf')).all())}))\n"
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


def _record(
    client: MlflowClient, name: str, version: str, decision: Decision, details: dict[str, Any], trigger: str
) -> None:
    gate = details.get("gate") or {}
    tags = {
        "flywheel.gate.decision": "promoted" if decision.promote else "rejected",
        "flywheel.gate.reason": decision.reason,
        "flywheel.gate.forced": str(decision.forced).lower(),
        "flywheel.gate.decided_at": datetime.now(UTC).isoformat(),
        "flywheel.gate.candidate": json.dumps(details.get("candidate")),
        "flywheel.gate.champion": json.dumps(details.get("champion_scores")),
        "flywheel.gate.difference": json.dumps(details.get("difference")),
        "flywheel.gate.condition": decision.condition,
        **{f"flywheel.gate.{key}": str(gate[key]) for key in GATE_TAGS if gate.get(key) is not None},
        "flywheel.gate.evaluated": json.dumps(gate.get("evaluated") or {}),
        "flywheel.trigger": trigger,
    }
    if details.get("champion_note"):
        tags["flywheel.gate.champion_note"] = details["champion_note"]
    for key, env in (("airflow.dag_id", "AIRFLOW_CTX_DAG_ID"), ("airflow.run_id", "AIRFLOW_CTX_DAG_RUN_ID")):
        if os.environ.get(env):
            tags[key] = os.environ[env]
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
