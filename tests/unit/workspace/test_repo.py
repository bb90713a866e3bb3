"""Reading what `dvc repro` did, and the hashes dvc.lock records."""

from __future__ import annotations

import pytest

from pipelines.workspace import classify, lock_hashes


@pytest.mark.parametrize(
    ("output", "stage", "outcome"),
    [
        ("Running stage 'train':\n> flywheel train --json\n", "train", "ran"),
        ("Stage 'train' didn't change, skipping\n", "train", "skipped"),
        ("Stage 'train' is cached - skipping run, checking out outputs\n", "train", "restored"),
        ("Running stage 'featurize':\n", "train", "skipped"),
    ],
)
def test_classify(output, stage, outcome):
    assert classify(stage, output) == outcome


def test_lock_hashes(tmp_path):
    (tmp_path / "dvc.lock").write_text("""schema: '2.0'
stages:
  featurize:
    cmd: flywheel featurize --json
    deps:
    - path: data/snapshot/events.parquet
      md5: aaa
      size: 10
    outs:
    - path: data/features
      md5: bbb.dir
      size: 20
""")
    assert lock_hashes(tmp_path) == {"data/snapshot/events.parquet": "aaa", "data/features": "bbb.dir"}
    assert lock_hashes(tmp_path / "missing") == {}
