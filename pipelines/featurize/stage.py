"""Featurize: split the snapshot by time and fit the preprocessing on the oldest part.

:func:`run` is the stage's edge: it reads ``data/snapshot/events.parquet``, calls the
pure core :func:`build_features` (:mod:`.split`, then :mod:`.preprocess`) and writes
the raw splits, the feature tables and the preprocessing spec. Every output is
byte-identical when rerun on the same snapshot, so DVC can skip the stages downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.common.io import json_bytes, parquet_bytes, write_if_changed
from pipelines.featurize.preprocess import FeaturizeError, Preprocessor
from pipelines.featurize.split import Splits, check_target, split_by_time
from pipelines.workspace.paths import EVENTS, PREPROCESS_SPEC, features_file, split_file

if TYPE_CHECKING:
    from pipelines.common.config import FeaturizeConfig, Params, Schema
    from pipelines.common.settings import Settings


@dataclass(frozen=True)
class Featurized:
    """Everything featurize writes: raw splits, feature tables and the fitted spec."""

    splits: Splits
    features: dict[str, pd.DataFrame]
    preprocessor: Preprocessor


def build_features(events: pd.DataFrame, schema: Schema, cfg: FeaturizeConfig) -> Featurized:
    """Split the snapshot, fit the preprocessing on train, transform all three splits."""
    splits = split_by_time(events, schema, cfg)
    check_target(splits.train, schema.target, schema.task)
    pre = Preprocessor.fit(splits.train, schema, cfg.min_category_count)
    features = {name: pre.features_frame(frame) for name, frame in splits.items()}
    return Featurized(splits, features, pre)


def write_outputs(result: Featurized, workspace: Path) -> None:
    """Write ``data/split/*.parquet``, ``data/features/*.parquet`` and ``preprocess.json``."""
    for name, frame in result.splits.items():
        write_if_changed(workspace / split_file(name), parquet_bytes(frame))
        write_if_changed(workspace / features_file(name), parquet_bytes(result.features[name]))
    write_if_changed(workspace / PREPROCESS_SPEC, json_bytes(result.preprocessor.to_dict()))


def summarize(result: Featurized) -> dict[str, Any]:
    """Row counts, positive rates and vocabulary sizes of the featurized splits."""
    target = result.preprocessor.target
    binary = result.preprocessor.task == "binary"
    splits = {
        name: {"rows": len(frame), "positives": int(frame[target].sum())} if binary else {"rows": len(frame)}
        for name, frame in result.splits.items()
    }
    vocab = {s.name: len(s.vocabulary) for s in result.preprocessor.categorical}
    return {"splits": splits, "features": list(result.preprocessor.feature_order), "vocabulary_sizes": vocab}


def run(params: Params, settings: Settings | None, workspace: Path) -> dict[str, Any]:
    """Featurize ``data/snapshot/events.parquet`` of the workspace into its split and feature files.

    ``settings`` is unused (the workspace holds everything featurize reads) and may be None; it keeps
    the argument order every stage's ``run`` shares.

    Raises:
        FeaturizeError: the snapshot is missing or cannot be split and featurized.
    """
    path = workspace / EVENTS
    if not path.exists():
        raise FeaturizeError(f"snapshot {path} not found; expected the snapshot stage to have written it")
    result = build_features(pd.read_parquet(path), params.schema, params.featurize)
    write_outputs(result, workspace)
    return {**summarize(result), "workspace": str(workspace)}
