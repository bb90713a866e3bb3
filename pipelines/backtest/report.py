"""The comparison report: a table per policy, the metric over time, the JSON; pure maths first.

Every interval is over **steps**, and resamples blocks of consecutive steps (a moving-block bootstrap),
because neighbouring steps share seasons and champions: their scores are not independent. A
promotion is *bad* when, on the step right after it, the model it replaced scores higher by more
than :data:`BAD_MARGIN` ROC-AUC.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BAD_MARGIN = 0.02
CONFIDENCE = 0.9
ROUNDS = 2000


# -- maths -----------------------------------------------------------------------------------------


def block_length(n: int) -> int:
    """The block of consecutive steps resampled together: ``round(n ** (1/3))``, at least 1."""
    return max(1, int(round(n ** (1 / 3))))


def block_bootstrap_mean(
    values: np.ndarray,
    confidence: float = CONFIDENCE,
    block: int | None = None,
    rounds: int = ROUNDS,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Moving-block bootstrap interval of the mean of a time-ordered series (None below 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return None
    size = min(block or block_length(n), n)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - size + 1, size=(rounds, math.ceil(n / size)))
    picks = (starts[:, :, None] + np.arange(size)).reshape(rounds, -1)[:, :n]
    means = values[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def scores(records: list[dict[str, Any]]) -> np.ndarray:
    """The scored steps' ROC-AUC, in step order."""
    return np.array([r["roc_auc"] for r in records if _finite(r["roc_auc"])], dtype=np.float64)


def bad_promotions(records: list[dict[str, Any]], margin: float = BAD_MARGIN) -> list[int]:
    """Steps whose promotion lost to the model it replaced on the next step by more than ``margin``."""
    by_step = {r["step"]: r for r in records}
    bad = []
    for r in records:
        after = by_step.get(r["step"] + 1)
        if not r["promoted"] or after is None or after["previous"] is None:
            continue
        if _finite(after["roc_auc"]) and _finite(after["previous_roc_auc"]):
            if after["previous_roc_auc"] - after["roc_auc"] > margin:
                bad.append(r["step"])
    return bad


def paired_difference(
    records: list[dict[str, Any]], baseline: list[dict[str, Any]], confidence: float = CONFIDENCE
) -> dict[str, Any] | None:
    """Mean ROC-AUC of ``records`` minus ``baseline``'s on the steps both scored, with its interval."""
    base = {r["step"]: r["roc_auc"] for r in baseline if _finite(r["roc_auc"])}
    diffs = np.array(
        [r["roc_auc"] - base[r["step"]] for r in records if _finite(r["roc_auc"]) and r["step"] in base]
    )
    if not len(diffs):
        return None
    interval = block_bootstrap_mean(diffs, confidence)
    return {
        "mean": float(diffs.mean()),
        "low": interval[0] if interval else None,
        "high": interval[1] if interval else None,
        "steps": len(diffs),
    }


@dataclass(frozen=True)
class PolicySummary:
    """One row of the comparison table."""

    policy: str
    steps_scored: int
    mean_roc_auc: float | None
    median_roc_auc: float | None
    low: float | None
    high: float | None
    vs_baseline: dict[str, Any] | None
    retrains: int
    promotions: int
    promotion_rate: float | None
    drift_checks: int
    alarms: int | None
    alarm_rate: float | None
    bad_promotions: int
    bad_promotion_steps: list[int]
    seconds: float


def summarize(
    name: str, records: list[dict[str, Any]], seconds: float, baseline: list[dict[str, Any]] | None = None
) -> PolicySummary:
    """The table row of one policy from its step records (the first model is not a retrain)."""
    values = scores(records)
    interval = block_bootstrap_mean(values)
    retrains = sum(r["retrained"] for r in records)
    promotions = sum(r["promoted"] for r in records)
    checked = [r for r in records if r["alarm"] is not None]
    alarms = sum(r["alarm"] for r in checked)
    bad = bad_promotions(records)
    return PolicySummary(
        policy=name,
        steps_scored=len(values),
        mean_roc_auc=float(values.mean()) if len(values) else None,
        median_roc_auc=float(np.median(values)) if len(values) else None,
        low=interval[0] if interval else None,
        high=interval[1] if interval else None,
        vs_baseline=paired_difference(records, baseline) if baseline is not None else None,
        retrains=retrains,
        promotions=promotions,
        promotion_rate=promotions / retrains if retrains else None,
        drift_checks=len(checked),
        alarms=alarms if checked else None,
        alarm_rate=alarms / len(checked) if checked else None,
        bad_promotions=len(bad),
        bad_promotion_steps=bad,
        seconds=round(seconds, 3),
    )


def change_response(
    records: list[dict[str, Any]], change_step: int, tolerance: float = 0.03, before: int = 3
) -> dict[str, Any]:
    """How a policy met a change that starts with step ``change_step``.

    ``steps_to_alarm``: 1 when the alarm fires at the end of the first changed step, and so on.
    ``steps_to_recover``: steps after ``change_step`` until the serving model's score is back within
    ``tolerance`` of its mean over the ``before`` steps before the change (1: the very next step).
    None when it never happens.
    """
    level = scores([r for r in records if change_step - before <= r["step"] < change_step])
    pre = float(level.mean()) if len(level) else None
    alarm = next((r["step"] for r in records if r["step"] >= change_step and r["alarm"]), None)
    recovered = (
        next(
            (
                r["step"]
                for r in records
                if r["step"] > change_step and _finite(r["roc_auc"]) and r["roc_auc"] >= pre - tolerance
            ),
            None,
        )
        if pre is not None
        else None
    )
    at_change = next((r["roc_auc"] for r in records if r["step"] == change_step), None)
    return {
        "change_step": change_step,
        "pre_change_roc_auc": pre,
        "roc_auc_at_change": at_change,
        "steps_to_alarm": alarm - change_step + 1 if alarm is not None else None,
        "steps_to_recover": recovered - change_step if recovered is not None else None,
        "tolerance": tolerance,
    }


# -- rendering -------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table_lines(rows: list[PolicySummary]) -> list[str]:
    """The table as Markdown lines."""
    lines = [
        "| policy | mean ROC-AUC [90% CI] | median | vs never [90% CI] | retrains | promotions | alarms | "
        "bad promotions | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        vs = r.vs_baseline
        shown_vs = f"{vs['mean']:+.3f} [{_fmt(vs['low'])}, {_fmt(vs['high'])}]" if vs else "–"
        lines.append(
            f"| {r.policy} | {_fmt(r.mean_roc_auc)} [{_fmt(r.low)}, {_fmt(r.high)}] | "
            f"{_fmt(r.median_roc_auc)} | {shown_vs} | {r.retrains} | {r.promotions} | {_fmt(r.alarms)} | "
            f"{r.bad_promotions} | {r.seconds:.1f} |"
        )
    return lines


def rolling_mean(values: np.ndarray, size: int) -> np.ndarray:
    """The mean of the last ``size`` finite values at each step (NaN until there is one)."""
    out = np.full(len(values), np.nan)
    for i in range(len(values)):
        window = values[max(0, i - size + 1) : i + 1]
        if np.isfinite(window).any():
            out[i] = np.nanmean(window)
    return out


def _auc(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array([r["roc_auc"] if _finite(r["roc_auc"]) else np.nan for r in records])


def plot_png(records: dict[str, list[dict[str, Any]]], title: str, change_step: int | None = None) -> bytes:
    """The metric over time, one panel per policy beside ``never``, with alarm, retrain and promotion marks.

    Each panel shows the step scores (thin) and their rolling mean over about a fiftieth of the steps
    (bold), so that a trend shows through the noise of small steps.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(records)
    every = np.concatenate([_auc(r) for r in records.values()]) if records else np.array([])
    low = float(np.nanpercentile(every, 1)) - 0.1 if np.isfinite(every).any() else 0.4
    fig, axes = plt.subplots(
        len(names), 1, figsize=(13.5, 2.2 * len(names) + 0.8), sharex=True, squeeze=False
    )
    baseline = records.get("never")
    for ax, name in zip(axes[:, 0], names, strict=True):
        _panel(ax, name, records[name], baseline if name != "never" else None, change_step, max(low, 0.0))
    axes[-1, 0].set_xlabel("step (each point: the model serving during the step, scored on its events)")
    axes[0, 0].set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _panel(
    ax: Any,
    name: str,
    records: list[dict[str, Any]],
    baseline: list[dict[str, Any]] | None,
    change_step: int | None,
    low: float,
) -> None:
    steps, auc = np.array([r["step"] for r in records]), _auc(records)
    size = max(1, len(records) // 50)
    if baseline is not None:
        base = _auc(baseline)
        ax.plot([r["step"] for r in baseline], rolling_mean(base, size), color="0.55", lw=1.4, label="never")
    if size > 1:
        ax.plot(steps, auc, color="tab:blue", lw=0.7, alpha=0.35)
    label = f"{name} (mean of {size} steps)" if size > 1 else name
    ax.plot(steps, rolling_mean(auc, size), color="tab:blue", lw=1.6, label=label)
    marks: tuple[tuple[str, str, str, float, Callable[[dict[str, Any]], bool]], ...] = (
        ("alarm", "x", "tab:red", 0.06, lambda r: bool(r["alarm"])),
        ("retrain", "|", "tab:orange", 0.035, lambda r: r["retrained"] and not r["promoted"]),
        ("promotion", "^", "tab:green", 0.01, lambda r: r["promoted"]),
    )
    for label, marker, color, lift, pick in marks:
        chosen = [r["step"] for r in records if pick(r)]
        if chosen:
            ax.scatter(chosen, [low + lift] * len(chosen), marker=marker, color=color, s=18, label=label)
    if change_step is not None:
        ax.axvline(change_step - 0.5, color="tab:purple", ls="--", lw=1, label="change")
    ax.set_ylim(low, 1.01)
    ax.set_ylabel("ROC-AUC")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
    ax.grid(alpha=0.3)


def html_page(summary: dict[str, Any], rows: list[PolicySummary], png: bytes) -> str:
    """A small self-contained page: the table, the plot (embedded) and what was replayed."""
    head = ["policy", "mean ROC-AUC", "90% CI", "median", "vs never", "retrains", "promotions", "alarms"]
    head += ["bad promotions", "seconds"]
    body = []
    for r in rows:
        vs = r.vs_baseline
        cells = [
            r.policy,
            _fmt(r.mean_roc_auc),
            f"[{_fmt(r.low)}, {_fmt(r.high)}]",
            _fmt(r.median_roc_auc),
            f"{vs['mean']:+.3f} [{_fmt(vs['low'])}, {_fmt(vs['high'])}]" if vs else "–",
            str(r.retrains),
            str(r.promotions),
            _fmt(r.alarms),
            str(r.bad_promotions),
            f"{r.seconds:.1f}",
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    facts = {
        k: summary[k]
        for k in ("data", "clock", "window", "candidates_trained", "rejected_steps")
        if k in summary
    }
    image = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Flywheel backtest</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body>
<h1>Flywheel backtest</h1>
<p>Each step, the model serving at that moment is scored on the step's labelled events, which it has never
seen (prequential evaluation). Intervals: 90&nbsp;% moving-block bootstrap over steps. A bad promotion lost
to the model it replaced on the next step by more than {BAD_MARGIN} ROC-AUC.</p>
<table><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>
{"".join(body)}
</table>
<p><img alt="ROC-AUC per step" src="data:image/png;base64,{image}" style="max-width:100%"></p>
<pre>{html.escape(_pretty(facts))}</pre>
</body></html>
"""


def _pretty(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, default=str)


def rows_as_dicts(rows: list[PolicySummary]) -> list[dict[str, Any]]:
    """The table as JSON-able dicts."""
    return [asdict(r) for r in rows]
