"""Schedules read from params.yaml when a DAG file is parsed (a small YAML read, nothing heavier)."""

from __future__ import annotations

from functools import cache

from flywheel_provider.hooks.flywheel import FlywheelHook


@cache
def cron_from_params(section: str, default: str) -> str:
    """``<section>.schedule`` from the project's params.yaml; an invalid file fails the DAG import clearly."""
    params = FlywheelHook().params()
    return getattr(params, section).schedule or default
