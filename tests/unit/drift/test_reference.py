"""The champion's training rows from DVC's content-addressed layout: cache first, then the remote."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.common.settings import Settings
from pipelines.drift.reference import ReferenceNotFound, find_in_manifest, load_split, object_path
from pipelines.workspace.paths import content_roots


def put(root: Path, data: bytes, md5: str | None = None) -> str:
    md5 = md5 or hashlib.md5(data).hexdigest()
    path = Path(object_path(str(root), md5))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return md5


def split_version(root: Path, frame: pd.DataFrame) -> str:
    """Store ``train.parquet`` and its directory manifest like ``dvc add data/split``; return the dir md5."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    file_md5 = put(root, buffer.getvalue())
    manifest = json.dumps(
        [{"md5": file_md5, "relpath": "train.parquet"}, {"md5": "0" * 32, "relpath": "test.parquet"}]
    ).encode()
    dir_md5 = hashlib.md5(manifest).hexdigest() + ".dir"
    put(root, manifest, dir_md5)
    return dir_md5


@pytest.fixture
def rows():
    return pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})


def test_reads_train_parquet_from_the_cache(tmp_path, rows):
    cache, remote = tmp_path / "cache", tmp_path / "remote"
    md5 = split_version(cache, rows)
    frame, source = load_split([str(cache), str(remote)], md5)
    pd.testing.assert_frame_equal(frame, rows)
    assert source.startswith(str(cache / "files" / "md5"))
    assert load_split([str(cache)], md5.removesuffix(".dir"))[0].equals(rows)  # with or without ".dir"


def test_falls_back_to_the_remote(tmp_path, rows):
    cache, remote = tmp_path / "cache", tmp_path / "remote"
    md5 = split_version(remote, rows)
    frame, source = load_split([str(cache), str(remote)], md5)
    assert frame.equals(rows) and source.startswith(str(remote))


def test_missing_everywhere_names_the_places_tried(tmp_path):
    with pytest.raises(
        ReferenceNotFound, match=r"in neither the cache nor the remote; tried .*cache.*remote"
    ):
        load_split([str(tmp_path / "cache"), str(tmp_path / "remote")], "ab" * 16 + ".dir")


def test_a_manifest_without_train_parquet_or_not_a_manifest(tmp_path):
    with pytest.raises(ReferenceNotFound, match=r"lists \['test.parquet'\], not 'train.parquet'"):
        find_in_manifest(
            json.dumps([{"md5": "1" * 32, "relpath": "test.parquet"}]).encode(), "train.parquet", "m"
        )
    with pytest.raises(ReferenceNotFound, match="not a DVC directory manifest"):
        find_in_manifest(b"{not json", "train.parquet", "m")


def test_an_object_that_is_not_parquet(tmp_path):
    cache = tmp_path / "cache"
    file_md5 = put(cache, b"garbage")
    manifest = json.dumps([{"md5": file_md5, "relpath": "train.parquet"}]).encode()
    put(cache, manifest, "cd" * 16 + ".dir")
    with pytest.raises(ReferenceNotFound, match="is not readable Parquet"):
        load_split([str(cache)], "cd" * 16)


def test_roots_are_the_workspace_cache_then_the_remote(tmp_path, monkeypatch):
    settings = Settings.from_env({"FLYWHEEL_HOME": str(tmp_path)})
    monkeypatch.delenv("FLYWHEEL_DVC_REMOTE", raising=False)
    assert content_roots(settings) == [
        str(tmp_path / "workspace" / ".dvc" / "cache"),
        str(tmp_path / "dvc-remote"),
    ]
    monkeypatch.setenv("FLYWHEEL_DVC_REMOTE", "s3://bucket/dvc/")
    assert content_roots(settings)[1] == "s3://bucket/dvc"
