"""What a training run was asked to do: a trigger form turned into parameter overrides."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipelines.common.config import ParamsError

FORM_FIELDS = (
    ("window_days", "snapshot.window_days"),
    ("epochs", "train.epochs"),
    ("learning_rate", "train.learning_rate"),
)


def training_overrides(form: dict[str, Any], as_of: datetime | None) -> dict[str, Any]:
    """Dotted ``params.yaml`` overrides for one training run.

    ``form`` is the trigger form (``window_days``, ``epochs``, ``learning_rate``,
    ``force_promote``, ``force_reason``); empty values keep ``params.yaml``'s. A ``window_days`` asks
    for a sliding window of that many days, whatever ``snapshot.window`` says. The run's logical
    date becomes the last day of the snapshot window, so a backfilled or
    re-run date always sees the same window.
    """
    check_force(form)
    overrides: dict[str, Any] = {}
    if as_of is not None:
        overrides["snapshot.as_of"] = as_of.isoformat()
    for field, key in FORM_FIELDS:
        if form.get(field) not in (None, ""):
            overrides[key] = form[field]
    if "snapshot.window_days" in overrides:
        overrides["snapshot.window"] = "sliding"
    return overrides


def check_force(form: dict[str, Any]) -> None:
    """A forced promotion needs a reason; refuse the run before any work otherwise."""
    if form.get("force_promote") and not str(form.get("force_reason") or "").strip():
        raise ParamsError(
            "force_promote = true needs force_reason: expected a non-empty reason, "
            "recorded on the model version"
        )
