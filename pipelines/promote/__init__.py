"""Promote: register the model and move the ``champion`` alias when the gate passes; lineage.

Modules: :mod:`.gate` (the pure verdict), :mod:`.registry`, :mod:`.lineage` and :mod:`.stage` (:func:`run`).
The gate is public for other stages (the backtest, the drift check's performance trigger): :func:`judge`
(the whole pure gate on test rows), :func:`block_ids`, :func:`bootstrap_difference` and
:func:`bootstrap_metric` (block bootstraps over blocks of event time) and their result types.
The registry is used through aliases only (``champion``, ``challenger``, ``previous_champion``);
:func:`champion_version` is the one "who is the champion" lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.promote import lineage, registry
    from pipelines.promote.gate import (
        Decision,
        Interval,
        PromoteError,
        Scores,
        block_ids,
        bootstrap_difference,
        bootstrap_metric,
        judge,
    )
    from pipelines.promote.note import run_note
    from pipelines.promote.registry import (
        CHALLENGER,
        CHAMPION,
        PREVIOUS,
        RegistryError,
        champion_version,
        version_behind,
    )
    from pipelines.promote.stage import run

_API = {
    "run": "stage",
    "CHAMPION": "registry",
    "CHALLENGER": "registry",
    "PREVIOUS": "registry",
    "RegistryError": "registry",
    "champion_version": "registry",
    "version_behind": "registry",
    "registry": "registry",
    "lineage": "lineage",
    "Decision": "gate",
    "Interval": "gate",
    "PromoteError": "gate",
    "Scores": "gate",
    "block_ids": "gate",
    "bootstrap_difference": "gate",
    "bootstrap_metric": "gate",
    "judge": "gate",
    "run_note": "note",
}
__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS",
    "Decision",
    "Interval",
    "PromoteError",
    "RegistryError",
    "Scores",
    "block_ids",
    "bootstrap_difference",
    "bootstrap_metric",
    "champion_version",
    "judge",
    "lineage",
    "registry",
    "run",
    "run_note",
    "version_behind",
]
__getattr__ = lazy_exports(__name__, _API)
