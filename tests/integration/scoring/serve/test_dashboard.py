"""The Grafana dashboard asks only for series Flywheel's collector exports (a scrape of an empty
installation, with its real MLflow store)."""

from __future__ import annotations

import json
import re

import pytest

from pipelines.scoring.serve.champion import ChampionWatcher
from pipelines.scoring.serve.metrics import registry
from tests.support.install import ROOT

pytestmark = pytest.mark.integration

DASHBOARD = ROOT / "docker" / "grafana" / "flywheel.json"


def exported_names(params, settings) -> set[str]:
    """Every series name a scrape of an empty installation declares (counters with ``_total``)."""
    watcher = ChampionWatcher(None, params.promote.model_name, 30)  # type: ignore[arg-type]
    names = set()
    for family in registry(params, settings, watcher).collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_every_panel_queries_an_exported_series(demo_params, tmp_settings):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"flywheel_[a-z_]+", expr)}
    exported = exported_names(demo_params, tmp_settings)
    assert queried and queried <= exported, f"not exported: {sorted(queried - exported)}"
    assert {"flywheel_champion_version", "flywheel_drift_share", "flywheel_rows_landed_total"} <= queried
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
