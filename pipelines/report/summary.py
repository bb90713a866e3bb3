"""Run reports: what each DAG run did, and the human summary ``make run`` ends with."""

from __future__ import annotations

import json
from typing import Any

from pipelines.common.config import LOWER_IS_BETTER, Params
from pipelines.common.settings import Settings

REPORTS = ("reports", "runs")  # <lake>/reports/runs/<dag_id>/<run id>.json and latest.json


def report_dir(params: Params, settings: Settings, dag_id: str) -> str:
    """Where a DAG's run reports live: in the lake, which every worker and client shares (S3 on the stack)."""
    from pipelines.common.lake import Lake

    return Lake(settings.lake_root(params)).path(*REPORTS, dag_id)


def write(params: Params, settings: Settings, dag_id: str, run_id: str, data: dict[str, Any]) -> str:
    """Keep a run's report as ``<lake>/reports/runs/<dag_id>/<run_id>.json`` and ``latest.json``.

    In the lake, not on the worker's disk: the task that writes it may run on any worker, and the summary,
    the metrics exporter and a person read it from anywhere. Returns the report's path.
    """
    from datetime import UTC, datetime

    from pipelines.common.lake import Lake, safe_run_id

    lake = Lake(settings.lake_root(params))
    folder = report_dir(params, settings, dag_id)
    report = {"dag_id": dag_id, "run_id": run_id, "written_at": datetime.now(UTC).isoformat(), **data}
    text = (json.dumps(report, indent=2, default=str) + "\n").encode()
    path = f"{folder}/{safe_run_id(run_id)}.json"
    lake.write_bytes(path, text)
    lake.write_bytes(f"{folder}/latest.json", text)
    return path


def latest(params: Params, settings: Settings, dag_id: str) -> dict[str, Any] | None:
    """The last run report of a DAG, or None before its first."""
    from pipelines.common.lake import Lake

    found: dict[str, Any] | None = Lake(settings.lake_root(params)).read_json(
        f"{report_dir(params, settings, dag_id)}/latest.json"
    )
    return found


def latest_all(params: Params, settings: Settings) -> dict[str, dict[str, Any]]:
    """The last run report of every DAG that wrote one, by DAG id."""
    from pipelines.common.lake import Lake

    lake = Lake(settings.lake_root(params))
    root = lake.path(*REPORTS)
    if not lake.fs.exists(root):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(lake.fs.glob(f"{root}/*/latest.json")):
        report = lake.read_json(path)
        if report:
            found[path.rsplit("/", 2)[-2]] = report
    return found


def champion(params: Params, settings: Settings) -> dict[str, Any] | None:
    """The registry's champion: version, run id and its gate record, or None."""
    from pipelines.promote import champion_version

    version = champion_version(params, settings)
    if version is None:
        return None
    return {
        "name": version.name,
        "version": str(version.version),
        "run_id": version.run_id,
        "reason": version.tags.get("flywheel.gate.reason"),
        "aliases": list(version.aliases),
    }


def collect(params: Params, settings: Settings) -> dict[str, Any]:
    """Everything the summary shows, from the run reports and the registry."""
    return {
        "ingest": latest(params, settings, "flywheel_ingest"),
        "training": latest(params, settings, "flywheel_training"),
        "drift": latest(params, settings, "flywheel_drift"),
        "scoring": latest(params, settings, "flywheel_scoring"),
        "champion": champion(params, settings),
    }


def render(summary: dict[str, Any], settings: Settings) -> str:
    """A short human summary of the last ingest and training runs."""
    lines = ["", "Flywheel summary", "================"]
    lines += _ingest_lines(summary.get("ingest"))
    lines += _drift_lines(summary.get("drift"))
    lines += _training_lines(summary.get("training"))
    lines += _why_and_models_lines(summary.get("training"))
    lines += _scoring_lines(summary.get("scoring"))
    champ = summary.get("champion")
    lines.append(
        f"Champion:   {champ['name']} v{champ['version']} (run {champ['run_id']})"
        if champ
        else "Champion:   none yet"
    )
    lines += [
        "Where to look:",
        f"  lake (landing, quarantine, validated, reports): {settings.home / 'lake'}",
        f"  DVC workspace: {settings.workspace}  (cd there; dvc metrics show; dvc plots show)",
        f"  MLflow UI:  .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri}",
        "  Airflow UI: make up   (http://localhost:8080, login admin / flywheel; MLflow UI on :5000 too)",
    ]
    return "\n".join(lines)


def _ingest_lines(ingest: dict[str, Any] | None) -> list[str]:
    if not ingest:
        return ["Ingest:     no run yet"]
    landed, validation = ingest.get("ingest", {}), ingest.get("validate", {})
    lines = [
        f"Ingest:     run {ingest['run_id']}: consumed {landed.get('consumed', 0)}, "
        f"landed {landed.get('landed', 0)}, quarantined {landed.get('quarantined', 0)}"
        + (f" ({landed['message']})" if landed.get("message") else "")
    ]
    lines.append(
        f"Validation: {validation.get('verdict', 'not run')} "
        f"({validation.get('validated_rows', 0)} rows validated, "
        f"{validation.get('rejected_rows', 0)} rejected)"
    )
    for part in validation.get("partitions", []):
        if part.get("docs_index"):
            lines.append(f"            data docs: {part['docs_index']}")
    return lines


def _training_lines(training: dict[str, Any] | None) -> list[str]:
    if not training:
        return ["Training:   no run yet"]
    stages = training.get("stages", {})
    ran = ", ".join(s for s, outcome in stages.items() if outcome == "ran") or "none"
    skipped = ", ".join(s for s, outcome in stages.items() if outcome != "ran") or "none"
    promotion = training.get("promotion", {})
    metrics = training.get("metrics", {})
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    return [
        f"Training:   run {training['run_id']} (trigger: {training.get('trigger')})",
        f"DVC stages: ran {ran}; skipped as unchanged: {skipped}",
        f"MLflow run: {promotion.get('mlflow_run_id')}  {shown}",
        f"Gate:       {'promoted' if promotion.get('promoted') else 'not promoted'}: "
        f"{promotion.get('reason')}",
        *_gate_lines(promotion.get("gate")),
    ]


def _gate_lines(gate: dict[str, Any] | None) -> list[str]:
    """The gate's block bootstrap: its interval and how many blocks of event time it rested on."""
    if not gate or gate.get("blocks") is None:
        return []
    interval, metric = gate.get("interval"), gate.get("metric")
    span = f"{gate['blocks']} blocks of {gate.get('block')} (promote.min_blocks {gate.get('min_blocks')})"
    if not interval:
        return [f"            block bootstrap: no interval ({gate.get('condition')}); test rows span {span}"]
    # The interval is oriented so that positive is better: champion − candidate for an error metric.
    difference = "champion − candidate" if metric in LOWER_IS_BETTER else "candidate − champion"
    return [
        f"            block bootstrap: {interval['confidence']:.0%} CI of {difference} {metric} "
        f"[{interval['low']:+.4f}, {interval['high']:+.4f}] over {span}, {interval['rounds']} rounds"
    ]


def _drift_lines(drift: dict[str, Any] | None) -> list[str]:
    """The last drift check: window, share, quality, performance, verdict, its triggers, the report."""
    if not drift:
        return ["Drift:      no check yet"]
    window, verdict = drift.get("window") or {}, drift.get("verdict") or {}
    columns = drift.get("drifted_columns") or []
    lines = [
        f"Drift:      run {drift['run_id']}: {drift.get('rows_current')} rows "
        f"[{window.get('start', '?')[:10]}, {window.get('end', '?')[:10]}) vs {drift.get('champion')}'s "
        f"training data; drift share {drift.get('drift_share', 0):.2f}"
        + (f" ({', '.join(columns)})" if columns else "")
    ]
    if drift.get("roc_auc") is not None:
        lines.append(
            f"            champion on the window: ROC-AUC {drift['roc_auc']:.4f}, "
            f"PR-AUC {drift['pr_auc']:.4f}"
        )
    performance = drift.get("performance") or {}
    if performance.get("description"):
        lines.append(f"            performance: {performance['description']}")
    lines.append(
        f"            verdict: {'retrain' if verdict.get('retrain') else 'no retrain'}: "
        + "; ".join(verdict.get("reasons") or [])
    )
    if verdict.get("triggers"):
        lines.append(f"            triggers fired: {', '.join(verdict['triggers'])}")
    report = drift.get("report") or {}
    lines.append(f"            report: {report.get('html') or report.get('summary')}")
    return lines


def _why_and_models_lines(training: dict[str, Any] | None) -> list[str]:
    """Why the last training ran, and the old and new model side by side on the same test rows."""
    if not training:
        return []
    lines = []
    why = training.get("trigger_reason") or {}
    if why.get("summary"):
        lines.append(f"Why:        {why['kind']}: {why['summary']}")
    promotion = training.get("promotion") or {}
    old, new = promotion.get("champion_scores"), promotion.get("candidate")
    if old and new:
        lines.append(
            f"Models:     on the same {promotion.get('test_rows')} newest test rows: "
            f"v{promotion.get('previous_champion')} (champion before) {_scores(old)}"
        )
        lines.append(
            f"            v{promotion.get('version')} (candidate, "
            f"{'promoted' if promotion.get('promoted') else 'not promoted'}) {_scores(new)}"
        )
    return lines


def _scoring_lines(scoring: dict[str, Any] | None) -> list[str]:
    """The last scoring run: what it scored with which version, the totals per version, the live metric."""
    if not scoring:
        return ["Scoring:    no run yet"]
    scored = scoring.get("score") or {}
    model = scored.get("model") or {}
    totals = scored.get("scored_by_version") or {}
    lines = [
        f"Scoring:    run {scoring['run_id']}: {scored.get('rows_scored', 0)} events scored by "
        f"{model.get('name')} v{model.get('version')} ({scored.get('partitions_scored', 0)} partitions; "
        f"{scored.get('partitions_skipped', 0)} already scored)",
        "            predictions by version: "
        + (", ".join(f"{v}: {n}" for v, n in totals.items()) or "none"),
    ]
    days = [d for d in (scoring.get("performance") or {}).get("days", []) if d.get("value") is not None]
    if days:
        last = days[-1]
        interval = last.get("interval") or {}
        shown = f" [{interval['low']:.4f}, {interval['high']:.4f}]" if interval else ""
        lines.append(
            f"            live {last['metric']} on {last['day']} (v{last['model_version']}, {last['rows']} "
            f"labelled): {last['value']:.4f}{shown}; {len(days)} days measured"
        )
    if scored.get("predictions"):
        lines.append(f"            predictions: {scored['predictions']}")
    return lines


def _scores(scores: dict[str, float]) -> str:
    """``roc_auc 0.9100, pr_auc 0.4200`` (a binary model), or the metrics of another task alike."""
    return ", ".join(f"{name} {value:.4f}" for name, value in scores.items())
