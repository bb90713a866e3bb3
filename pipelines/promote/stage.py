"""Promote: register the trained model and move the ``champion`` alias only when the gate passes.

:func:`run` is the edge. The candidate and the current champion are scored on
the same held-out rows and the pure gate (:mod:`.gate`) decides; before the
alias moves, the registered model is loaded back in a fresh process (started
while the gate scores, :class:`FreshProcessCheck`) and asked to predict.
Every decision, promoted or not, is recorded as tags on the model version.
Only MLflow 3 aliases are used (``champion``, ``challenger``,
``previous_champion``, see :mod:`.registry`), never the deprecated stages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
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
    candidate = f"models:/{name}/{version}"
    # The fresh-process check loads the candidate while this process scores; its answer is read only
    # when the gate passes, and the alias moves only after it.
    check = FreshProcessCheck.start(candidate, rows[list(schema.feature_names)].head(100), settings)
    try:
        cand_proba = predict_model(candidate, rows, schema)
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
            details["infra_check"] = check.result(policy.max_latency_ms)
            if not details["infra_check"]["ok"]:
                decision = replace(
                    decision,
                    promote=False,
                    reason=f"infra check failed: {details['infra_check']['reason']}",
                    condition=INFRA_CHECK_FAILED,
                )
                details["gate"]["condition"] = INFRA_CHECK_FAILED
    finally:
        check.stop()  # a rejected candidate's check is not waited for
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


CHECK_CODE = (
    "import json, sys, time, pandas as pd, mlflow\n"
    "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
    "rows = pd.DataFrame(json.loads(open(sys.argv[2]).read()))\n"
    "start = time.perf_counter(); out = model.predict(rows)\n"
    "print(json.dumps({'latency_ms': (time.perf_counter() - start) * 1000, 'rows': len(out),"
    " 'finite': bool(pd.Series(out['probability']).between(0, 1).all()) if 'probability' in out"
    " else bool(pd.Series(out['prediction']).abs().lt(float('inf')).all())}))\n"
)
CHECK_TIMEOUT_S = 600.0


@dataclass
class FreshProcessCheck:
    """A registered model loaded in a new Python process and asked to predict sample rows.

    :meth:`start` launches it and returns at once (loading MLflow and torch takes that process a few
    seconds, while the gate scores); :meth:`result` waits for its verdict: it loads, it answers, in time.
    """

    model_uri: str
    rows: int
    proc: subprocess.Popen[bytes]
    folder: Path
    started: float

    @classmethod
    def start(cls, model_uri: str, sample: pd.DataFrame, settings: Settings) -> FreshProcessCheck:
        """Write ``sample`` where the new process reads it, and start that process."""
        folder = Path(tempfile.mkdtemp(prefix="flywheel-check-"))
        (folder / "rows.json").write_text(sample.to_json(orient="records", date_format="iso"))
        with (folder / "out").open("wb") as out, (folder / "err").open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", CHECK_CODE, model_uri, str(folder / "rows.json")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **settings.as_env()},
            )
        return cls(model_uri, len(sample), proc, folder, time.perf_counter())

    def result(self, max_latency_ms: float, timeout_s: float = CHECK_TIMEOUT_S) -> dict[str, Any]:
        """Wait for the process; ``{"ok", "reason", "wall_ms", ...}`` with its latency and row count."""
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            late = f"model {self.model_uri} did not load and predict within {timeout_s:.0f} s"
            return self._verdict(False, late)
        if code != 0:
            stderr = (self.folder / "err").read_text(errors="replace")
            return self._verdict(False, f"model {self.model_uri} failed to load or predict: {stderr[-2000:]}")
        result = json.loads((self.folder / "out").read_text().strip().splitlines()[-1])
        ok = result["rows"] == self.rows and result["finite"] and result["latency_ms"] <= max_latency_ms
        reason = (
            "loads and predicts"
            if ok
            else (
                f"predicted {result['rows']} of {self.rows} rows, "
                f"probabilities in [0,1]: {result['finite']}, "
                f"latency {result['latency_ms']:.0f} ms (budget {max_latency_ms:.0f} ms)"
            )
        )
        return self._verdict(ok, reason, **result)

    def _verdict(self, ok: bool, reason: str, **result: Any) -> dict[str, Any]:
        return {"ok": ok, "reason": reason, **result, "wall_ms": (time.perf_counter() - self.started) * 1000}

    def stop(self) -> None:
        """End the process if it still runs and remove its files."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


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
