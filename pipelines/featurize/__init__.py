"""Featurize: the training window (snapshot), the time split and the preprocessing fitted on train."""

from pipelines.featurize.preprocess import run

__all__ = ["run"]
