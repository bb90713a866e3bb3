"""The network factory's source in the workspace: a file the ``train`` stage depends on.

``dvc.yaml`` is static, so it cannot name a team's module (``train.model: package.module:factory``)
as a dependency. Before each run, :func:`sync_model_code` copies that module's source to
``code/model_factory.py`` in the workspace, which ``train`` lists in its ``deps``: editing the
factory's file changes the copy, and DVC reruns ``train`` (and ``evaluate``). With the built-in
network the file only says so (``pipelines/train`` is a dependency of its own). The copy is committed
with ``dvc.lock``, so every training run's network code is in the workspace's history.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipelines.workspace.paths import MODEL_CODE

BUILTIN = "# train.model: null, the built-in TabularNet (pipelines/train/network.py, a dependency already)\n"


def module_file(module: str) -> Path | None:
    """The source file of an importable module (``package/__init__.py`` for a package), or None."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package missing or failing to import
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def model_code_text(model: str | None) -> str:
    """What ``code/model_factory.py`` holds for ``train.model``: the factory module's source."""
    if model is None:
        return BUILTIN
    module = model.partition(":")[0]
    source = module_file(module)
    header = f"# train.model: {model}; the source of module {module}, copied before each run\n"
    if source is None:
        return header + "# (not found on the Python path of the sync: train will fail naming it)\n"
    return header + source.read_text()


def sync_model_code(workspace: Path, model: str | None) -> Path:
    """Write ``code/model_factory.py`` when its content changed (DVC compares content, not times)."""
    path = workspace / MODEL_CODE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = model_code_text(model)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
