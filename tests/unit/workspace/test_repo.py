"""Reading what `dvc repro` did, and the hashes dvc.lock records."""

from __future__ import annotations

import pytest

from pipelines.workspace import classify, lock_hashes
from pipelines.workspace.repo import configure_dvc


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


def test_configure_dvc_writes_autostage_and_the_default_remote_once(tmp_path):
    (tmp_path / ".dvc").mkdir()
    config = tmp_path / ".dvc" / "config"
    config.write_text("# kept\n[cache]\n    type = hardlink\n")
    assert configure_dvc(tmp_path, "s3://bucket/dvc") is True
    text = config.read_text()
    assert "# kept" in text and "type = hardlink" in text
    assert "autostage = true" in text and "remote = store" in text
    assert "['remote \"store\"']" in text and "url = s3://bucket/dvc" in text
    assert configure_dvc(tmp_path, "s3://bucket/dvc") is False, "an unchanged config is not rewritten"
    assert config.read_text() == text
    assert configure_dvc(tmp_path, "s3://bucket/other") is True, "a new remote URL replaces the old one"
    assert "url = s3://bucket/other" in config.read_text() and "s3://bucket/dvc" not in config.read_text()


def test_configure_dvc_makes_a_relative_local_remote_absolute(tmp_path, monkeypatch):
    (tmp_path / ".dvc").mkdir()
    monkeypatch.chdir(tmp_path)
    configure_dvc(tmp_path, "remote")
    assert f"url = {tmp_path / 'remote'}" in (tmp_path / ".dvc" / "config").read_text()
