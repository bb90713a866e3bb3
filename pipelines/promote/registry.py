"""The MLflow model registry as Flywheel uses it: aliases only, every move recorded.

``champion`` serves, ``challenger`` is the latest candidate, ``previous_champion``
is one step back. Each alias move is appended to a log kept as a tag on the
registered model, so ``flywheel status`` can say when and why a version moved.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipelines.common.config import Params
from pipelines.common.errors import FlywheelError
from pipelines.common.settings import Settings
from pipelines.common.tracking import client

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# Error codes MLflow answers with when a registered model or an alias does not exist.
_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous_champion"
LOG_TAG = "flywheel.alias_log"
LOG_LIMIT = 40  # MLflow caps a tag value; keep the latest moves
WORKSPACE_COMMIT = "flywheel.workspace_commit"  # the DVC workspace commit whose dvc.lock made a version


class RegistryError(FlywheelError):
    """A registry operation cannot be carried out."""


def version_behind(mlflow_client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The model version behind ``alias``; None when the model or the alias does not exist.

    The one champion lookup: any other failure (a server error, a broken store) is raised, so an
    unreadable registry is never mistaken for "no champion yet".
    """
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            return None
        raise


def alias_version(mlflow_client: MlflowClient, name: str, alias: str) -> str | None:
    """The version number behind an alias, or None when the alias (or the model) does not exist."""
    found = version_behind(mlflow_client, name, alias)
    return None if found is None else str(found.version)


def champion_version(params: Params, settings: Settings) -> ModelVersion | None:
    """The registry's ``champion`` of ``promote.model_name``, or None before the first promotion."""
    return version_behind(client(settings), params.promote.model_name, CHAMPION)


def history(mlflow_client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The recorded alias moves of a registered model, oldest first."""
    tags = mlflow_client.get_registered_model(name).tags
    moves: list[dict[str, Any]] = json.loads(tags.get(LOG_TAG, "[]"))
    return moves


def move_alias(mlflow_client: MlflowClient, name: str, alias: str, version: str, reason: str) -> None:
    """Point ``alias`` at ``version`` and record the move with its reason."""
    before = alias_version(mlflow_client, name, alias)
    mlflow_client.set_registered_model_alias(name, alias, version)
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "alias": alias,
        "from": before,
        "to": version,
        "reason": reason,
        "airflow_run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
    }
    log = (history(mlflow_client, name) + [entry])[-LOG_LIMIT:]
    mlflow_client.set_registered_model_tag(name, LOG_TAG, json.dumps(log))


def tag_workspace_commit(settings: Settings, promotion: dict[str, Any], commit: str) -> None:
    """Record on a version the workspace commit whose ``dvc.lock`` made it: on a newly registered one, and on
    one without it (registered by a try that failed before its commit). An older version keeps its commit."""
    mlflow_client, name, version = client(settings), promotion["model_name"], promotion["version"]
    if not promotion.get("registered_now"):
        if version is None or WORKSPACE_COMMIT in mlflow_client.get_model_version(name, version).tags:
            return
    mlflow_client.set_model_version_tag(name, version, WORKSPACE_COMMIT, commit)


def rollback(params: Params, settings: Settings, reason: str) -> dict[str, Any]:
    """Put the previous champion back in one step; the demoted version becomes ``previous_champion``."""
    if not (reason or "").strip():
        raise RegistryError("rollback needs a reason; expected --reason 'why', recorded on both versions")
    mlflow_client, name = client(settings), params.promote.model_name
    champion, previous = (
        alias_version(mlflow_client, name, CHAMPION),
        alias_version(mlflow_client, name, PREVIOUS),
    )
    if previous is None:
        raise RegistryError(
            f"model {name!r} has no '{PREVIOUS}' alias to roll back to "
            f"(champion: {champion}); expected at least one earlier promotion"
        )
    move_alias(mlflow_client, name, CHAMPION, previous, f"rollback: {reason}")
    if champion is not None:
        move_alias(mlflow_client, name, PREVIOUS, champion, f"rolled back from: {reason}")
        mlflow_client.set_model_version_tag(name, champion, "flywheel.rolled_back", reason)
    mlflow_client.set_model_version_tag(name, previous, "flywheel.restored_by_rollback", reason)
    return {"model_name": name, "champion": previous, "previous_champion": champion, "reason": reason}


def status(params: Params, settings: Settings) -> dict[str, Any]:
    """Aliases, versions with their gate metrics and decisions, and the alias history."""
    from mlflow.exceptions import MlflowException

    mlflow_client, name = client(settings), params.promote.model_name
    try:
        model = mlflow_client.get_registered_model(name)
    except MlflowException:
        return {"model_name": name, "aliases": {}, "versions": [], "history": []}
    versions = sorted(mlflow_client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    return {
        "model_name": name,
        "aliases": {alias: str(version) for alias, version in model.aliases.items()},
        "versions": [_version_row(v) for v in versions],
        "history": json.loads(model.tags.get(LOG_TAG, "[]")),
    }


def _version_row(version: ModelVersion) -> dict[str, Any]:
    tags = version.tags
    candidate = json.loads(tags.get("flywheel.gate.candidate") or "null") or {}
    return {
        "version": str(version.version),
        "run_id": version.run_id,
        "created": datetime.fromtimestamp(version.creation_timestamp / 1000, UTC).isoformat(
            timespec="seconds"
        ),
        "aliases": sorted(version.aliases),
        "decision": tags.get("flywheel.gate.decision"),
        "reason": tags.get("flywheel.gate.reason"),
        "trigger": tags.get("flywheel.trigger"),
        "roc_auc": candidate.get("roc_auc"),
        "pr_auc": candidate.get("pr_auc"),
    }


def render_status(report: dict[str, Any]) -> str:
    """``flywheel status`` as a person reads it."""
    lines = [
        f"Model {report['model_name']}",
        "Aliases: " + (", ".join(f"{a} → v{v}" for a, v in sorted(report["aliases"].items())) or "none"),
    ]
    lines.append(
        f"{'version':>7}  {'created':<25} {'roc_auc':>7} {'pr_auc':>7}  {'decision':<9} aliases / reason"
    )
    for row in report["versions"]:
        metrics = [f"{row[m]:.4f}" if isinstance(row[m], float) else "-" for m in ("roc_auc", "pr_auc")]
        lines.append(
            f"{row['version']:>7}  {row['created']:<25} {metrics[0]:>7} {metrics[1]:>7}  "
            f"{row['decision'] or '-':<9} {','.join(row['aliases']) or '-'} / {row['reason'] or ''}"
        )
    if report["history"]:
        lines.append("Alias moves (latest last):")
        lines += [
            f"  {h['at']}  {h['alias']}: v{h['from']} → v{h['to']}  ({h['reason']})"
            for h in report["history"][-10:]
        ]
    return "\n".join(lines)
