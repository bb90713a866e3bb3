"""Schedules read from params.yaml when a DAG file is parsed: one small YAML read, no Connection lookup.

The file is ``$FLYWHEEL_PARAMS``, else ``params.yaml`` in ``$FLYWHEEL_PROJECT`` (the project root).
Its ``schedules`` section is validated with the rest of the file, so a bad value fails the DAG import
naming the key.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


def params_path() -> Path:
    """The params file the DAGs are configured from (no Airflow Connection: parsing stays cheap)."""
    if os.environ.get("FLYWHEEL_PARAMS"):
        return Path(os.environ["FLYWHEEL_PARAMS"])
    project = Path(os.environ.get("FLYWHEEL_PROJECT") or Path(__file__).resolve().parents[2])
    return project / "params.yaml"


@cache
def cron_from_params(dag: str) -> str:
    """``schedules.<dag>`` (``ingest``, ``training`` or ``drift``) from the project's params.yaml."""
    from pipelines.common.config import load_params

    return str(getattr(load_params(params_path()).schedules, dag))
