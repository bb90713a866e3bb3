"""run_note: the one-line outcome of a training run that Airflow shows on the DAG run."""

from __future__ import annotations

import pytest

from pipelines.promote import run_note

DIFF = {"mean": 0.031, "low": 0.012, "high": 0.05, "confidence": 0.9}
GATE = {"metric": "pr_auc", "block": "1D"}


def promotion(**fields):
    return {"version": "7", "model_name": "m", "reason": "r", **fields}


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (
            promotion(promoted=True, gate={**GATE, "condition": "clears_margin"}, difference=DIFF),
            "v7 promoted: PR-AUC +0.031, 90 % block interval [+0.012, +0.050]",
        ),
        (
            promotion(
                version="8",
                promoted=False,
                gate={**GATE, "condition": "below_margin"},
                difference={"mean": 0.004, "low": -0.01, "high": 0.018, "confidence": 0.95},
            ),
            "v8 rejected: below_margin, PR-AUC +0.004, 95 % block interval [-0.010, +0.018]",
        ),
        (
            promotion(
                promoted=False,
                gate={"metric": "roc_auc", "block": "row", "condition": "below_margin"},
                difference=DIFF,
            ),
            "v7 rejected: below_margin, ROC-AUC +0.031, 90 % row interval [+0.012, +0.050]",
        ),
        (
            promotion(
                version="1",
                promoted=True,
                gate={**GATE, "condition": "first_champion"},
                candidate={"pr_auc": 0.8123, "roc_auc": 0.9},
            ),
            "v1 promoted: first_champion, PR-AUC 0.812",
        ),
        (
            promotion(promoted=False, gate={**GATE, "condition": "below_floor"}, candidate={"pr_auc": 0.1}),
            "v7 rejected: below_floor, PR-AUC 0.100",
        ),
        (
            promotion(
                promoted=True,
                forced=True,
                reason="forced: hotfix",
                gate={**GATE, "condition": "forced"},
                difference=None,
            ),
            "v7 promoted (forced): forced: hotfix",
        ),
        (
            promotion(promoted=False, reason="version 7 is already the champion (no new model)"),
            "v7 unchanged: version 7 is already the champion (no new model)",
        ),
    ],
)
def test_run_note(summary, expected):
    assert run_note(summary) == expected


def test_a_long_note_is_clipped_to_what_airflow_stores():
    note = run_note(promotion(promoted=False, reason="x" * 5000))
    assert len(note) == 1000 and note.endswith("…")
