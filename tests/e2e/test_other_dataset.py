"""Another tabular dataset runs through the whole loop by changing params.yaml alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.support.install import make_installation, run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SENSOR_PARAMS = {
    "schema": {
        "name": "pump_sensors",
        "key": "reading_id",
        "event_time": "taken_at",
        "target": "failed",
        "columns": [
            {"name": "temperature", "type": "float", "min": -40, "max": 150},
            {"name": "vibration", "type": "float", "min": 0, "max": 10},
            {"name": "site", "type": "category", "categories": ["north", "south", "east", "west"]},
            {"name": "firmware", "type": "category", "categories": ["v1", "v2", "v3"]},
            {"name": "load_pct", "type": "int", "min": 0, "max": 100, "required": False},
        ],
    },
    "validate": {"min_rows": 20, "max_target_rate": 0.6},
    "train": {"epochs": 4, "batch_size": 128, "patience": 2},
    "promote": {"model_name": "pump-failures", "min_roc_auc": 0.6, "min_pr_auc": 0.1},
    "mlflow": {"experiment": "pumps"},
}


def write_sensor_readings(folder, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    temperature = rng.normal(70, 20, rows)
    vibration = rng.gamma(2.0, 1.0, rows).clip(0, 10)
    firmware = rng.choice(["v1", "v2", "v3"], rows)
    load = rng.integers(0, 101, rows)
    logit = -4 + 0.05 * (temperature - 70) + 0.8 * vibration * (firmware == "v1") + 0.02 * load
    failed = rng.random(rows) < 1 / (1 + np.exp(-logit))
    with open(folder / "readings.jsonl", "w") as fh:
        for i in range(rows):
            taken_at = end - timedelta(minutes=int(rng.integers(1, 10 * 24 * 60)))
            fh.write(
                json.dumps(
                    {
                        "reading_id": f"r{seed}-{i}",
                        "taken_at": taken_at.isoformat().replace("+00:00", "Z"),
                        "temperature": round(float(temperature[i]), 2),
                        "vibration": round(float(vibration[i]), 3),
                        "site": str(rng.choice(["north", "south", "east", "west"])),
                        "firmware": str(firmware[i]),
                        "load_pct": int(load[i]) if i % 40 else None,
                        "failed": int(failed[i]),
                    }
                )
                + "\n"
            )


def test_sensor_dataset_through_the_whole_loop(dagbag, tmp_path, monkeypatch):
    from pipelines.report import summary as report

    install = make_installation(tmp_path, monkeypatch, json.loads(json.dumps(SENSOR_PARAMS)))
    write_sensor_readings(install.events, rows=3000, seed=11)

    assert run_dag(dagbag, "flywheel_ingest")[0].state == "success"
    run, states = run_dag(dagbag, "flywheel_training")
    assert run.state == "success", states

    record = report.latest(install.params(), install.settings(), "flywheel_training")
    assert record["promotion"]["promoted"] is True
    champ = report.champion(install.params(), install.settings())
    assert champ["name"] == "pump-failures"
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/pump-failures@champion")
    rows = pd.DataFrame(
        [{"temperature": 99.0, "vibration": 6.0, "site": "north", "firmware": "v1", "load_pct": None}]
    )
    assert 0.0 <= float(model.predict(rows)["probability"].iloc[0]) <= 1.0
