"""The REST client's pure parts, and its error when nothing answers (the live API: tests/integration)."""

from __future__ import annotations

import pytest

from pipelines.common.airflow_api import AirflowApi, AirflowApiError, run_path
from tests.support.live_airflow import free_port


@pytest.mark.parametrize(
    ("dag_id", "run_id", "path"),
    [
        (
            "flywheel_training",
            "manual__2026-01-01T00:00:00+00:00",
            "/dags/flywheel_training/dagRuns/manual__2026-01-01T00%3A00%3A00%2B00%3A00",
        ),
        ("a b", "x/y", "/dags/a%20b/dagRuns/x%2Fy"),
    ],
)
def test_a_run_path_quotes_each_segment(dag_id, run_id, path):
    assert run_path(dag_id, run_id) == path


def test_an_api_that_does_not_answer_is_named_with_the_call():
    url = f"http://127.0.0.1:{free_port()}"
    api = AirflowApi(url + "/", "admin", "secret", timeout_s=5, retries=0)
    with pytest.raises(
        AirflowApiError, match=rf"PATCH /dags/d/dagRuns/r: the Airflow API at {url} does not answer"
    ) as info:
        api.set_note("d", "r", "v1 promoted")
    assert info.value.status is None
    assert api.health() is None
