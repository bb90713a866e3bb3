"""The drift reference: the rows the champion was trained on, found through its lineage.

``models:/<promote.model_name>@champion`` → its MLflow run → the run's tag
``flywheel.dvc.split_md5`` (the md5 that ``dvc.lock`` records for the
``data/split`` directory) → the directory manifest ``<md5>.dir`` in the DVC
cache of the workspace (``.dvc/cache/files/md5/<2>/<30>.dir``: a JSON list of
``{"md5", "relpath"}``) → ``train.parquet`` by its own md5. When the cache lacks
a file, the DVC remote (same layout under ``files/md5/``) is read instead, so
the reference survives ``dvc gc`` and a fresh workspace.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.common.config import Params
from pipelines.common.errors import FlywheelError
from pipelines.common.settings import Settings
from pipelines.workspace import paths

SPLIT_TAG = "flywheel.dvc.split_md5"
REFERENCE_FILE = "train.parquet"


class ReferenceNotFound(FlywheelError):
    """The champion's training data cannot be located or read."""


class NoChampion(ReferenceNotFound):
    """There is no champion yet: nothing to compare the current window with."""


@dataclass(frozen=True)
class Champion:
    """The champion model version, the lineage tags and metrics of the run that trained it, its own tags."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    version_tags: dict[str, str] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Reference:
    """The champion and the rows it was trained on."""

    champion: Champion
    frame: pd.DataFrame
    split_md5: str
    source: str

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (no rows)."""
        return {
            "model": self.champion.model_uri,
            "run_id": self.champion.run_id,
            "split_md5": self.split_md5,
            "source": self.source,
            "rows": len(self.frame),
            "data_window": self.champion.tags.get("flywheel.data_window"),
        }


def champion(params: Params, settings: Settings) -> Champion:
    """The version behind ``@champion`` and its run's tags; :class:`NoChampion` when there is none."""
    from mlflow.exceptions import MlflowException

    from pipelines.common import tracking
    from pipelines.promote import CHAMPION, version_behind

    client = tracking.client(settings)
    name = params.promote.model_name
    version = version_behind(client, name, CHAMPION)
    if version is None:
        raise NoChampion(
            f"model {name!r} has no {CHAMPION!r} alias in {settings.tracking_uri}: "
            f"expected a trained and promoted model to compare the current window with"
        ) from None
    if version.run_id is None:
        raise ReferenceNotFound(
            f"champion {name} v{version.version} has no MLflow run id; expected the run that trained it"
        )
    try:
        run = client.get_run(version.run_id)
    except MlflowException as exc:
        raise ReferenceNotFound(
            f"champion {name} v{version.version}: its MLflow run {version.run_id} cannot be "
            f"read ({exc.message}); expected the run that trained it"
        ) from None
    return Champion(
        name,
        str(version.version),
        version.run_id,
        dict(run.data.tags),
        dict(run.data.metrics),
        dict(version.tags or {}),
    )


def object_path(root: str, md5: str) -> str:
    """``<root>/files/md5/<first 2>/<rest>`` (DVC 3's content-addressed layout)."""
    return f"{root}/files/md5/{md5[:2]}/{md5[2:]}"


def read_object(roots: list[str], md5: str) -> tuple[bytes, str]:
    """The bytes of a DVC object from the first root that holds it, and where it was found."""
    import fsspec

    tried = []
    for root in roots:
        path = object_path(root, md5)
        fs, bare = fsspec.core.url_to_fs(path)
        try:
            with fs.open(bare, "rb") as fh:
                return fh.read(), path
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            tried.append(path)
    raise ReferenceNotFound(f"DVC object {md5} is in neither the cache nor the remote; tried {tried}")


def find_in_manifest(manifest: bytes, relpath: str, where: str) -> str:
    """The md5 of ``relpath`` in a DVC directory manifest (``.dir``)."""
    try:
        entries = json.loads(manifest)
        found: dict[str, str] = {e["relpath"]: e["md5"] for e in entries}
    except (ValueError, TypeError, KeyError):
        raise ReferenceNotFound(
            f"{where} is not a DVC directory manifest; expected a JSON list of {{md5, relpath}}"
        ) from None
    if relpath not in found:
        raise ReferenceNotFound(f"{where} lists {sorted(found)}, not {relpath!r}")
    return found[relpath]


def load_split(roots: list[str], split_md5: str, relpath: str = REFERENCE_FILE) -> tuple[pd.DataFrame, str]:
    """Read one file of a ``data/split`` directory version, by the directory's md5."""
    dir_md5 = split_md5 if split_md5.endswith(".dir") else f"{split_md5}.dir"
    manifest, where = read_object(roots, dir_md5)
    data, source = read_object(roots, find_in_manifest(manifest, relpath, where))
    try:
        return pd.read_parquet(io.BytesIO(data)), source
    except Exception as exc:  # a truncated or foreign object: say which one
        raise ReferenceNotFound(
            f"{source} ({relpath} of data/split {split_md5}) is not readable Parquet: {exc}"
        ) from None


def find_reference(params: Params, settings: Settings) -> Reference:
    """The champion and its training rows, through the run's DVC lineage tag."""
    champ = champion(params, settings)
    split_md5 = champ.tags.get(SPLIT_TAG)
    if not split_md5:
        raise ReferenceNotFound(
            f"champion {champ.model_uri} (run {champ.run_id}) has no {SPLIT_TAG!r} tag; "
            "expected the train stage's lineage tags (dvc.lock md5 of data/split)"
        )
    frame, source = load_split(paths.content_roots(settings), split_md5)
    return Reference(champ, frame, split_md5, source)


def local_path(path: str) -> Path | None:
    """``path`` as a local Path when it is one (for logging artifacts), else None."""
    return Path(path) if "://" not in path and Path(path).exists() else None
