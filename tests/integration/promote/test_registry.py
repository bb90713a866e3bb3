"""Promotion against a real MLflow registry and a real DVC workspace: the gate guards the champion.

The installation is shared by the module; each test asks for the state it needs (a first champion, a
previous champion to roll back to), so the tests pass alone and in any order.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from mlflow import MlflowClient

from tests.support.install import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def aliases(install) -> dict[str, str]:
    client = MlflowClient(install.settings().tracking_uri)
    name = install.params().promote.model_name
    return {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}


def version_tags(install, version: str) -> dict[str, str]:
    client = MlflowClient(install.settings().tracking_uri)
    return client.get_model_version(install.params().promote.model_name, version).tags


def cli_json(*args: str) -> tuple[int, dict]:
    """Run a `flywheel` command in-process outside a test (no capsys); its exit code and JSON summary."""
    from pipelines import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main([*args, "--json"])
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def first_runs(trained) -> dict:
    """The installation's first `flywheel repro`, then a rerun without changes; the aliases after each."""
    first = cli_json("repro")
    after_first = aliases(trained)
    # The decision as recorded right then: a later test may gate the same version again and re-record it.
    first_tags = version_tags(trained, first[1]["promotion"]["version"]) if first[0] == 0 else {}
    rerun = cli_json("repro")
    return {
        "first": first,
        "after_first": after_first,
        "first_tags": first_tags,
        "rerun": rerun,
        "after_rerun": aliases(trained),
    }


@pytest.fixture
def previous_champion(trained, first_runs) -> None:
    """A ``previous_champion`` to roll back to: when there is none yet, a new model becomes champion."""
    if "previous_champion" in aliases(trained):
        return
    code, out = cli_json("repro", "--set", "train.seed=9")
    assert code == 0, out
    if not out["promotion"]["promoted"]:
        code, out = cli_json("promote", "--force", "--reason", "a champion to roll back from")
        assert code == 0 and out["promoted"] is True, out


def test_first_model_becomes_champion(trained, first_runs):
    code, out = first_runs["first"]
    assert code == 0, out
    assert out["stages"] == {"snapshot": "ran", "featurize": "ran", "train": "ran", "evaluate": "ran"}
    promotion = out["promotion"]
    assert promotion["promoted"] is True, promotion
    assert promotion["infra_check"]["ok"] is True
    assert first_runs["after_first"] == {"champion": promotion["version"], "challenger": promotion["version"]}
    tags = first_runs["first_tags"]
    assert tags["flywheel.gate.decision"] == "promoted"
    assert "no champion yet" in tags["flywheel.gate.reason"]
    policy = trained.params().promote
    assert tags["flywheel.gate.condition"] == "first_champion" and tags["flywheel.gate.block"] == policy.block
    assert int(tags["flywheel.gate.blocks"]) == promotion["gate"]["blocks"] >= policy.min_blocks
    evaluated = json.loads(
        tags["flywheel.gate.evaluated"]
    )  # what the drift check's performance trigger reads
    assert evaluated["roc_auc"]["blocks"] == promotion["gate"]["blocks"] and evaluated["roc_auc"]["se"] > 0


def test_rerun_without_changes_skips_and_keeps_champion(first_runs):
    code, out = first_runs["rerun"]
    assert code == 0, out
    assert out["stages"]["featurize"] == "skipped" and out["stages"]["train"] == "skipped"
    assert out["promotion"]["promoted"] is False and "already the champion" in out["promotion"]["reason"]
    assert first_runs["after_rerun"] == first_runs["after_first"]


@pytest.mark.usefixtures("first_runs")
def test_worse_candidate_is_not_promoted(trained, capsys):
    champion = aliases(trained)["champion"]
    code, out = run_cli(
        capsys,
        "repro",
        "--set",
        "train.epochs=1",
        "--set",
        "train.learning_rate=0.000001",
        "--set",
        "promote.min_improvement=0.0",
    )
    assert code == 0, out
    assert out["stages"]["train"] == "ran"
    promotion = out["promotion"]
    assert promotion["promoted"] is False
    assert aliases(trained)["champion"] == champion
    assert aliases(trained)["challenger"] == promotion["version"]
    tags = version_tags(trained, promotion["version"])
    assert tags["flywheel.gate.decision"] == "rejected"
    assert tags["flywheel.gate.reason"] == promotion["reason"]
    gate, policy = promotion["gate"], trained.params().promote
    assert tags["flywheel.gate.condition"] == gate["condition"] in ("below_floor", "below_margin")
    assert tags["flywheel.gate.block"] == gate["block"] == policy.block and int(tags["flywheel.gate.blocks"])


@pytest.mark.usefixtures("first_runs")
def test_candidate_failing_the_infra_check_is_not_promoted(trained, capsys):
    champion = aliases(trained)["champion"]
    code, out = run_cli(
        capsys,
        "repro",
        "--set",
        "train.seed=7",
        "--set",
        "promote.max_latency_ms=0.000001",
        "--set",
        "promote.min_improvement=-1.0",
    )
    assert code == 0, out
    assert out["promotion"]["promoted"] is False
    assert out["promotion"]["reason"].startswith("infra check failed")
    assert aliases(trained)["champion"] == champion
    gate, policy = out["promotion"]["gate"], trained.params().promote  # the gate itself passed
    assert gate["condition"] == "infra_check_failed"
    assert (
        gate["interval"]["blocks"] == gate["blocks"] >= policy.min_blocks and gate["interval"]["rounds"] > 0
    )
    tags = version_tags(trained, out["promotion"]["version"])
    assert json.loads(tags["flywheel.gate.difference"])["block"] == policy.block
    assert tags["flywheel.gate.condition"] == "infra_check_failed"


@pytest.mark.usefixtures("first_runs")
def test_forced_promotion_keeps_the_previous_champion(trained, capsys):
    champion = aliases(trained)["champion"]
    code, out = run_cli(capsys, "repro", "--set", "train.seed=8", "--set", "promote.min_pr_auc=0.99")
    assert code == 0 and out["promotion"]["promoted"] is False  # below the raised floor
    code, out = run_cli(capsys, "promote", "--force", "--reason", "urgent relabel")
    assert code == 0, out
    assert out["promoted"] is True and out["forced"] is True
    new = aliases(trained)
    assert new["champion"] == out["version"] and new["previous_champion"] == champion
    assert version_tags(trained, out["version"])["flywheel.gate.reason"] == "forced: urgent relabel"


@pytest.mark.usefixtures("first_runs")  # a workspace with a model
def test_force_without_reason_is_refused(capsys):
    code, out = run_cli(capsys, "promote", "--force")
    assert code == 2 and "needs a non-empty reason" in out["error"]


@pytest.mark.usefixtures("previous_champion")
def test_rollback_restores_the_previous_champion(trained, capsys):
    import mlflow

    before = aliases(trained)
    code, out = run_cli(capsys, "rollback", "--reason", "alerts on the new model")
    assert code == 0, out
    after = aliases(trained)
    assert after["champion"] == before["previous_champion"]
    assert after["previous_champion"] == before["champion"]
    name = trained.params().promote.model_name
    mlflow.set_tracking_uri(trained.settings().tracking_uri)
    champion = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    restored = MlflowClient(trained.settings().tracking_uri).get_model_version(name, after["champion"])
    assert champion.metadata.run_id == restored.run_id
    code, out = run_cli(capsys, "status")
    assert out["history"][-2]["reason"] == "rollback: alerts on the new model"
    assert {row["version"] for row in out["versions"]} >= set(after.values())


def test_rollback_needs_a_reason_and_a_previous_champion(trained, capsys, tmp_path, monkeypatch):
    code, out = run_cli(capsys, "rollback", "--reason", " ")
    assert code == 2 and "needs a reason" in out["error"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    code, out = run_cli(capsys, "rollback", "--reason", "x")
    assert code == 2 and "no 'previous_champion' alias" in out["error"]


@pytest.mark.usefixtures("first_runs")
def test_lineage_traces_the_champion_to_its_source_files(trained, capsys):
    code, chain = run_cli(capsys, "lineage", "champion")
    assert code == 0, chain
    assert chain["model"]["version"] == aliases(trained)["champion"]
    assert chain["workspace_commit"] and "data/features" in chain["dvc"]
    assert chain["window"]["rows"] > 0 and chain["partitions"]
    sources = chain["partitions"][0]["sources"]
    assert sources[0]["path"].startswith(str(trained.events)) and len(sources[0]["sha256"]) == 64
    assert chain["partitions"][0]["gx_success"] is True


@pytest.mark.usefixtures("first_runs")
def test_reproduce_rebuilds_a_version_with_the_same_metrics(capsys):
    code, out = run_cli(capsys, "reproduce", "1")
    assert code == 0, out
    assert out["reproduced_run"] != out["original_run"]
    for metric in ("roc_auc", "pr_auc"):
        assert abs(out["metrics"][metric]["difference"]) < 1e-6, out["metrics"]


@pytest.mark.usefixtures("first_runs")
def test_unreachable_tracking_server_fails_naming_it_and_leaves_aliases(trained, capsys, monkeypatch):
    before = aliases(trained)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    code, out = run_cli(capsys, "promote", "--force", "--reason", "should not happen")
    assert code == 2
    assert "MLflow tracking server http://127.0.0.1:9 is unreachable" in out["error"]
    monkeypatch.undo()
    assert aliases(trained) == before


@pytest.mark.usefixtures("first_runs")  # a workspace with a model
def test_a_champion_that_cannot_score_the_test_rows_is_named_not_taken_for_none(trained):
    """A champion whose model does not load or predict: the gate refuses and says why; aliases stay."""
    import mlflow

    from pipelines import promote

    client = MlflowClient(trained.settings().tracking_uri)
    name, before = trained.params().promote.model_name, aliases(trained)
    mlflow.set_tracking_uri(trained.settings().tracking_uri)
    with mlflow.start_run() as run:
        mlflow.log_text("not a model", "model/placeholder.txt")
    broken = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", broken.version)
    params, settings = trained.params(), trained.settings()
    floorless = params.promote.model_copy(update={"min_roc_auc": 0.0, "min_pr_auc": 0.0})  # any model
    try:
        out = promote.run(params.model_copy(update={"promote": floorless}), settings, settings.workspace)
        assert out["promoted"] is False and out["gate"]["condition"] == "champion_unscorable"
        assert f"champion v{broken.version} could not score the test rows" in out["reason"]
        assert (
            "cannot be compared with the champion" in out["reason"] and "no champion yet" not in out["reason"]
        )
        assert aliases(trained)["champion"] == str(broken.version)
        assert version_tags(trained, out["version"])["flywheel.gate.condition"] == "champion_unscorable"
    finally:
        for alias in ("champion", "challenger"):
            client.set_registered_model_alias(name, alias, before[alias])


def test_the_workspace_commit_tags_a_version_once_and_a_retry_adds_a_missing_one(trained, first_runs):
    from pipelines.promote import registry

    settings, name = trained.settings(), trained.params().promote.model_name
    version = first_runs["first"][1]["promotion"]["version"]
    made_by = version_tags(trained, version)[registry.WORKSPACE_COMMIT]
    again = {"model_name": name, "version": version, "registered_now": False}

    # a later run that found the version registered (DVC restored the model) keeps the commit that made it
    registry.tag_workspace_commit(settings, again, "0" * 40)
    assert version_tags(trained, version)[registry.WORKSPACE_COMMIT] == made_by

    # a try that registered the version but failed before its commit: the retry tags it
    MlflowClient(settings.tracking_uri).delete_model_version_tag(name, version, registry.WORKSPACE_COMMIT)
    registry.tag_workspace_commit(settings, again, made_by)
    assert version_tags(trained, version)[registry.WORKSPACE_COMMIT] == made_by
