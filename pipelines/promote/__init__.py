"""Promote: register the model and move the ``champion`` alias when the gate passes; lineage.

Modules: :mod:`.gate` (the pure verdict), :mod:`.registry`, :mod:`.lineage` and :mod:`.stage` (:func:`run`).
The registry is used through aliases only (``champion``, ``challenger``, ``previous_champion``);
:func:`champion_version` is the one "who is the champion" lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.promote import lineage, registry
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
}
__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PREVIOUS",
    "RegistryError",
    "champion_version",
    "lineage",
    "registry",
    "run",
    "version_behind",
]
__getattr__ = lazy_exports(__name__, _API)
