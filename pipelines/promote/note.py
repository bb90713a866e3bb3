"""The one-line outcome of a training run, as the Airflow UI shows it on the DAG run (its note).

``v7 promoted: PR-AUC +0.031, 90 % block interval [+0.012, +0.050]`` or
``v8 rejected: below_margin, PR-AUC +0.004, 90 % block interval [-0.010, +0.018]``: the version, what
the gate did, its named condition, and the candidate-minus-champion interval it judged.
"""

from __future__ import annotations

from typing import Any

MAX_NOTE = 1000  # Airflow's dag_run_note.content column
METRIC_NAMES = {"pr_auc": "PR-AUC", "roc_auc": "ROC-AUC"}


def metric_label(metric: str) -> str:
    """``pr_auc`` → ``PR-AUC``; an unknown metric keeps its name."""
    return METRIC_NAMES.get(metric, metric)


def describe_interval(metric: str, difference: dict[str, Any], block: str | None) -> str:
    """``PR-AUC +0.031, 90 % block interval [+0.012, +0.050]`` (a row bootstrap says ``row interval``)."""
    kind = "row" if block == "row" else "block"
    confidence = f"{float(difference['confidence']) * 100:g} %"
    return (
        f"{metric_label(metric)} {float(difference['mean']):+.3f}, {confidence} {kind} interval "
        f"[{float(difference['low']):+.3f}, {float(difference['high']):+.3f}]"
    )


def run_note(promotion: dict[str, Any]) -> str:
    """The note of a ``flywheel_training`` run from the promote stage's summary."""
    version = f"v{promotion.get('version')}"
    gate = promotion.get("gate")
    if not gate:  # the trained model was already registered and judged: nothing moved
        return _clip(f"{version} unchanged: {promotion.get('reason', 'no gate decision')}")
    condition = gate.get("condition") or "no condition"
    if promotion.get("promoted"):
        head = f"{version} promoted" + (" (forced)" if promotion.get("forced") else "")
        parts = [] if condition in ("clears_margin", "forced") else [condition]
    else:
        head, parts = f"{version} rejected", [condition]
    difference = promotion.get("difference")
    metric = gate.get("metric", "")
    if difference:
        parts.append(describe_interval(metric, difference, gate.get("block")))
    elif (promotion.get("candidate") or {}).get(metric) is not None:
        parts.append(f"{metric_label(metric)} {float(promotion['candidate'][metric]):.3f}")
    if promotion.get("forced"):
        parts.append(str(promotion.get("reason", "")))
    return _clip(f"{head}: {', '.join(p for p in parts if p)}" if parts else head)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_NOTE else text[: MAX_NOTE - 1] + "…"
