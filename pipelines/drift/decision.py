"""The drift gate: a small pure function from a drift result to a retrain verdict.

:func:`decide_retrain` never touches a file, a clock or a service: the drift
result, the policy (``params.drift``), the time of the last drift-triggered
retrain, "now" and the performance check are all passed in. The verdict names the
triggers that fired (:data:`TRIGGERS`) and says why. The DAG decides what it does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipelines.common.config import DriftConfig

if TYPE_CHECKING:
    from pipelines.drift.performance import Performance

DATA_DRIFT, CRITICAL_COLUMN, PERFORMANCE, QUALITY_FLOOR = (
    "data_drift",
    "critical_column",
    "performance",
    "quality_floor",
)
TRIGGERS = (DATA_DRIFT, CRITICAL_COLUMN, PERFORMANCE, QUALITY_FLOOR)


@dataclass(frozen=True)
class ColumnDrift:
    """The drift test of one column: its method, score and threshold, and whether it drifted.

    ``skipped`` columns (no values in either window) count neither as drifted nor
    in the share's denominator; ``note`` says why a column was judged or skipped
    the way it was. ``calibration`` says where a calibrated threshold came from
    (None: the fixed ``drift.column_threshold``).
    """

    name: str
    method: str
    score: float | None
    threshold: float
    drifted: bool
    critical: bool = False
    skipped: bool = False
    note: str | None = None
    calibration: str | None = None

    def describe(self) -> str:
        """``amount (wasserstein 0.173 >= 0.1)``, with the calibration when there is one, or the note."""
        if self.score is None:
            return f"{self.name} ({self.note or self.method})"
        sign = ">=" if self.drifted else "<"
        if self.calibration:
            judged = f"{self.method} {self.score:.3f} {sign} {self.threshold:.3f}"
            return f"{self.name} ({judged}, {self.calibration})"
        return f"{self.name} ({self.method} {self.score:.3f} {sign} {self.threshold:g})"


@dataclass(frozen=True)
class DriftResult:
    """What a drift check measured: the window sizes, every column, prediction drift and quality."""

    rows_current: int
    rows_reference: int
    columns: tuple[ColumnDrift, ...] = ()
    prediction: ColumnDrift | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    notes: tuple[str, ...] = ()
    sampling: dict[str, Any] = field(default_factory=dict)

    @property
    def tested(self) -> tuple[ColumnDrift, ...]:
        """The columns that were judged (not skipped)."""
        return tuple(c for c in self.columns if not c.skipped)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.tested if c.drifted]

    @property
    def drift_share(self) -> float:
        """Share of the judged columns that drifted (0 when none was judged)."""
        tested = self.tested
        return sum(c.drifted for c in tested) / len(tested) if tested else 0.0

    @property
    def critical_drifted(self) -> tuple[ColumnDrift, ...]:
        return tuple(c for c in self.tested if c.drifted and c.critical)


@dataclass(frozen=True)
class Trigger:
    """A reason to retrain: which trigger fired (one of :data:`TRIGGERS`) and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class Verdict:
    """Retrain or not, and why. ``drift_detected``: a trigger fired, whether or not it may act on it.

    ``triggers`` names the triggers that fired (``data_drift``, ``critical_column``,
    ``performance``, ``quality_floor``), in that order, each once.
    """

    retrain: bool
    reasons: list[str]
    drift_detected: bool = False
    triggers: list[str] = field(default_factory=list)


def retrain_triggers(
    result: DriftResult, policy: DriftConfig, performance: Performance | None = None
) -> list[Trigger]:
    """The triggers that fire on ``result``: drift share, critical columns, performance, quality floor."""
    triggers = []
    share, tested = result.drift_share, result.tested
    if tested and share >= policy.max_drift_share:
        drifted = [c.name for c in tested if c.drifted]
        triggers.append(
            Trigger(
                DATA_DRIFT,
                f"drift share {share:.2f} >= drift.max_drift_share {policy.max_drift_share:g} "
                f"({len(drifted)} of {len(tested)} columns drifted: {', '.join(drifted)})",
            )
        )
    for column in result.critical_drifted:
        triggers.append(Trigger(CRITICAL_COLUMN, f"critical column {column.describe()} drifted"))
    if performance is not None and performance.dropped:
        triggers.append(Trigger(PERFORMANCE, performance.describe()))
    if result.roc_auc is not None and result.roc_auc < policy.min_roc_auc:
        triggers.append(
            Trigger(
                QUALITY_FLOOR,
                f"champion ROC-AUC {result.roc_auc:.3f} on the current window is below "
                f"drift.min_roc_auc {policy.min_roc_auc:g}",
            )
        )
    return triggers


def _no_drift(result: DriftResult, policy: DriftConfig, performance: Performance | None) -> str:
    drifted = result.drifted_columns
    quality = (
        "no labels to judge quality"
        if result.roc_auc is None
        else f"champion ROC-AUC {result.roc_auc:.3f} >= {policy.min_roc_auc:g}"
    )
    shown = f"; {performance.describe()}" if performance is not None else ""
    return (
        f"no retrain: drift share {result.drift_share:.2f} < {policy.max_drift_share:g} "
        f"(drifted: {', '.join(drifted) or 'none'}); no critical column drifted; {quality}{shown}"
    )


def decide_retrain(
    result: DriftResult,
    policy: DriftConfig,
    last_retrain_at: datetime | None,
    now: datetime,
    performance: Performance | None = None,
) -> Verdict:
    """Retrain when enough columns drift, a critical column drifts, the champion's performance on the
    labelled window drops (``performance``: the interval lies below ``-drift.max_performance_drop``),
    or its ROC-AUC falls below the floor.

    Never on a window smaller than ``policy.min_rows``, and never again within
    ``policy.cooldown_hours`` of the last drift-triggered retrain (the reasons
    still say what was detected).
    """
    if result.rows_current < policy.min_rows:
        return Verdict(
            False,
            [
                f"no retrain: the current window has {result.rows_current} rows, fewer than "
                f"drift.min_rows {policy.min_rows}; too few to judge drift"
            ],
        )
    fired = retrain_triggers(result, policy, performance)
    if not fired:
        return Verdict(False, [_no_drift(result, policy, performance)])
    triggers, names = [t.reason for t in fired], list(dict.fromkeys(t.name for t in fired))
    if last_retrain_at is not None:
        since = now - last_retrain_at
        if since < timedelta(hours=policy.cooldown_hours):
            return Verdict(
                False,
                [
                    *triggers,
                    (
                        f"no retrain: inside the cooldown, the last drift-triggered retrain was at "
                        f"{last_retrain_at.isoformat()} ({since.total_seconds() / 3600:.1f} h ago, "
                        f"drift.cooldown_hours {policy.cooldown_hours:g})"
                    ),
                ],
                drift_detected=True,
                triggers=names,
            )
    return Verdict(True, triggers, drift_detected=True, triggers=names)
