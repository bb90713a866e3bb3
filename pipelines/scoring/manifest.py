"""The predictions tier and its manifests: which validated partition was scored by which model version.

Each validated partition ``validated/source=<src>/run=<run>/`` is scored into one predictions partition
of the same name, ``predictions/source=<src>/run=<run>/``: ``part-00000.parquet`` first, then its
``_manifest.json`` (the validated partition, the model name, version and run, the scoring run, the row
count), both through the lake's one durable write. A predictions partition counts as scored only once
its manifest is written, so:

- a re-run skips every validated partition whose predictions manifest exists (idempotent);
- a run killed anywhere (``kill -9``) leaves at most one predictions partition without a manifest; the
  next run removes it and scores that validated partition again: no event lost, none scored twice;
- a new champion scores only partitions not scored yet, unless ``rescore`` asks for every partition
  another version scored (each is overwritten, the manifest last).

:func:`plan` is the pure decision; the rest reads and names paths.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipelines.common.lake import MANIFEST, Lake

PREDICTIONS, VALIDATED = "predictions", "validated"
PART = "part-00000.parquet"


@dataclass(frozen=True)
class Plan:
    """What one scoring run does: the validated partitions (relative names) to score, and those skipped.

    ``rescored``: partitions another version scored that ``rescore`` asked to score again.
    """

    score: tuple[str, ...]
    skipped: tuple[str, ...]
    rescored: tuple[str, ...] = field(default=())


def plan(validated: list[str], scored: dict[str, dict[str, Any]], version: str, rescore: bool) -> Plan:
    """Which of ``validated`` (relative partition names, oldest first) the champion ``version`` scores now.

    ``scored`` maps a relative name to its predictions manifest (only partitions whose manifest is
    written). A partition without one is scored (a partly written predictions partition is overwritten);
    a partition with one is skipped, unless ``rescore`` and another version scored it.
    """
    todo, skipped, rescored = [], [], []
    for name in validated:
        entry = scored.get(name)
        if entry is None:
            todo.append(name)
        elif rescore and str(entry.get("model_version")) != str(version):
            todo.append(name)
            rescored.append(name)
        else:
            skipped.append(name)
    return Plan(tuple(todo), tuple(skipped), tuple(rescored))


def relative(lake: Lake, partition: str, tier: str = VALIDATED) -> str:
    """``source=<src>/run=<run>`` of a partition path of ``tier``."""
    prefix = lake.path(tier) + "/"
    if not partition.startswith(prefix):
        raise ValueError(f"partition {partition!r} is not under the {tier} tier {prefix!r}")
    return partition[len(prefix) :]


def validated_partitions(lake: Lake) -> list[str]:
    """Every complete validated partition as a relative name, in the order they were written."""
    paths = lake.complete_partitions(VALIDATED)
    written = {p: (lake.read_json(f"{p}/{MANIFEST}") or {}).get("written_at", "") for p in paths}
    return [relative(lake, p) for p in sorted(paths, key=lambda p: (written[p], p))]


def scored_manifests(lake: Lake) -> dict[str, dict[str, Any]]:
    """The manifest of every complete predictions partition, by relative name."""
    return {
        relative(lake, p, PREDICTIONS): lake.read_json(f"{p}/{MANIFEST}")
        for p in lake.complete_partitions(PREDICTIONS)
    }


def by_version(manifests: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Rows scored per model version (``<name> v<version>``) over the given manifests."""
    counts: Counter[str] = Counter()
    for entry in manifests.values():
        counts[f"{entry.get('model_name')} v{entry.get('model_version')}"] += int(entry.get("rows", 0))
    return dict(sorted(counts.items()))


def partition_path(lake: Lake, name: str, tier: str = PREDICTIONS) -> str:
    """The full path of relative partition ``name`` in ``tier``."""
    return lake.path(tier, name)
