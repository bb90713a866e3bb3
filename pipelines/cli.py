"""The ``flywheel`` command: one sub-command per stage, the same entry points DVC and Airflow call.

Every stage command takes ``--json`` and then prints one JSON object
summarising what it did as its last line of output (``{"ok": false, "error":
...}`` when it failed, with a non-zero exit status).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.common.config import Params, load_params
from pipelines.common.errors import EXIT_FAILED, EXIT_REJECTED, FlywheelError, ParamsError
from pipelines.common.settings import Settings

Command = Callable[[argparse.Namespace, Settings], dict[str, Any]]  # a sub-command: its JSON summary


def _date(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected an ISO-8601 date such as 2026-11-21") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number between 0 and 1")
    return number


def _assignment(value: str) -> tuple[str, Any]:
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r}: expected KEY=VALUE such as train.epochs=5")
    import yaml

    return key, yaml.safe_load(raw)


# -- commands ------------------------------------------------------------------------------


def cmd_produce(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.demo import generator as produce

    demo = dict(
        rows=args.rows,
        seed=args.seed,
        start=args.start,
        end=args.end,
        batch=args.batch,
        covariate_drift=args.covariate_drift,
        concept_drift=args.concept_drift,
        malformed_fraction=args.malformed_fraction,
    )
    if args.to == "kafka":
        from pipelines.demo import publish

        topic = args.topic or load_params(settings.params_path).ingest.kafka.topics[0]
        if args.task != "binary":
            task_demo = {k: v for k, v in demo.items() if k != "malformed_fraction"}
            return publish.task_to_kafka(topic, args.task, partitions=args.partitions, **task_demo)
        return publish.to_kafka(topic, partitions=args.partitions, **demo)
    if args.to == "s3":
        from pipelines.demo import publish

        url = args.out or load_params(settings.params_path).ingest.s3.url
        return publish.to_s3(url, files=args.files, fmt=args.format, **demo)
    if not args.out:
        raise ParamsError("flywheel produce --to folder needs --out FOLDER (or --to kafka / --to s3)")
    if args.task != "binary":
        from pipelines.demo import variants

        task_demo = {k: v for k, v in demo.items() if k != "malformed_fraction"}
        return variants.produce_task(args.out, args.task, **task_demo)
    if args.concept_change_at is not None:
        return _produce_stream(args)
    return produce.produce(args.out, files=args.files, fmt=args.format, **demo)


def _produce_stream(args: argparse.Namespace) -> dict[str, Any]:
    """``--concept-change-at``: the original fraud rule before the date, the drifted one from it on."""
    from pipelines.demo import streams

    mixed = {"covariate_drift": args.covariate_drift, "concept_drift": args.concept_drift}
    mixed["malformed_fraction"] = args.malformed_fraction
    if args.to != "folder" or any(mixed.values()):
        raise ParamsError(
            f"--concept-change-at writes a folder (--to folder) of clean events; got --to {args.to} and "
            f"{ {k: v for k, v in mixed.items() if v} }"
        )
    try:
        return streams.produce_stream(
            args.out,
            args.rows,
            args.seed,
            args.start,
            args.end,
            args.files,
            args.format,
            args.batch,
            change_at=args.concept_change_at,
        )
    except ValueError as exc:
        raise ParamsError(f"--concept-change-at: {exc}") from None


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import ingest

    run_id = args.run_id or "manual__" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return ingest.run(
        load_params(settings.params_path), settings, run_id=run_id, sources=args.source, path=args.path
    )


def cmd_services(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.demo import services

    names: list[str] | None = args.names or None
    ports = dict(args.port or [])
    if args.action == "up":
        records = services.up(names or list(services.DEFAULT_UP), ports=ports)
        return {"services": records, "environment": services.environment(records)}
    if args.action == "down":
        return {"stopped": services.down(names)}
    records = services.status()
    running = {k: v for k, v in records.items() if v["alive"]}
    return {"services": records, "environment": services.environment(running)}


def cmd_stack(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import stack

    return stack.run(None, settings, args.action, install=args.install)


def _service_port(value: str) -> tuple[str, int]:
    name, sep, port = value.partition("=")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: expected NAME=PORT such as kafka=9092")
    return name, int(port)


def cmd_validate(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import validate

    summary = validate.run(load_params(settings.params_path), settings)
    if summary["verdict"] == "fail":
        raise validate.ValidationFailed.from_summary(summary)
    return summary


def _workspace(args: argparse.Namespace, settings: Settings) -> Path:
    """``--workspace``; else the current folder when DVC runs a stage in it; else the home's workspace."""
    if args.workspace:
        return Path(args.workspace)
    cwd = Path.cwd()
    return cwd if (cwd / "dvc.yaml").exists() and (cwd / ".dvc").is_dir() else settings.workspace


def _workspace_params(args: argparse.Namespace, settings: Settings) -> Params:
    return load_params(_workspace(args, settings) / "params.yaml")


def cmd_snapshot(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.featurize import snapshot

    workspace = _workspace(args, settings)
    params = _workspace_params(args, settings)
    return snapshot.run(params, settings, workspace, as_of=args.as_of or params.snapshot.as_of)


def _stage(module_name: str) -> Command:
    def command(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
        import importlib

        module = importlib.import_module(f"pipelines.{module_name}")
        workspace = _workspace(args, settings)
        summary: dict[str, Any] = module.run(_workspace_params(args, settings), settings, workspace)
        return summary

    return command


def cmd_promote(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import promote

    workspace = _workspace(args, settings)
    return promote.run(
        _workspace_params(args, settings),
        settings,
        workspace,
        force=args.force,
        force_reason=args.reason,
        trigger=args.trigger,
    )


def cmd_rollback(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.promote import registry

    return registry.rollback(load_params(settings.params_path), settings, args.reason)


def cmd_status(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.promote import registry

    report = registry.status(load_params(settings.params_path), settings)
    if not args.json:
        print(registry.render_status(report))
    return report


def cmd_lineage(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.promote import lineage

    chain = lineage.trace(load_params(settings.params_path), settings, args.model)
    if not args.json:
        print(lineage.render(chain))
    return chain


def cmd_reproduce(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.promote import lineage

    return lineage.reproduce(load_params(settings.params_path), settings, args.model)


def cmd_init(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import workspace

    load_params(settings.params_path)
    path = workspace.init(settings)
    return {"home": str(settings.home), "workspace": str(path), "tracking_uri": settings.tracking_uri}


def cmd_repro(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import promote, workspace
    from pipelines.promote import registry

    workspace.init(settings)
    workspace.sync(settings, dict(args.set or []))
    stages = {s: workspace.repro(settings, s).outcome for s in ("snapshot", "featurize", "train", "evaluate")}
    params = load_params(settings.workspace / "params.yaml")
    promotion = promote.run(params, settings, settings.workspace, trigger="cli")
    commit = workspace.commit(settings, f"flywheel repro: model v{promotion['version']}")
    registry.tag_workspace_commit(settings, promotion, commit)
    return {"stages": stages, "promotion": promotion, "workspace_commit": commit}


def cmd_drift(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import drift

    run_id = args.run_id or "manual__" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    summary = drift.run(load_params(settings.params_path), settings, run_id, as_of=args.as_of)
    if not args.json:
        print("\n".join(drift.describe(summary)))
    return summary


def cmd_score(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import scoring

    run_id = args.run_id or "manual__" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    summary = scoring.run(load_params(settings.params_path), settings, run_id, rescore=args.rescore)
    if not args.json:
        print("\n".join(scoring.describe(summary)))
    return summary


def cmd_performance(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import scoring

    run_id = args.run_id or "manual__" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return scoring.measure(load_params(settings.params_path), settings, run_id, labels=args.labels)


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import backtest

    if args.params:  # the data's own params: relative paths in it (extra expectations) are read from there
        settings = dataclasses.replace(settings, params_path=Path(args.params).resolve())
    params = load_params(settings.params_path)
    summary: dict[str, Any] = backtest.run(
        params,
        settings,
        args.data,
        step=args.step,
        start=args.start,
        end=args.end,
        policies=args.policies,
        out=Path(args.out) if args.out else None,
        change_at=args.change_at,
    )
    if not args.json:
        print("\n".join([*summary["table"], "", f"report: {summary['files']['html']}"]))
    return summary


def cmd_serve(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.scoring import serve

    params = load_params(settings.params_path)
    return serve.run(params, settings, host=args.host, port=args.port, token=serve.token_from_env())


def cmd_metrics_exporter(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines.scoring import serve

    return serve.export_metrics(load_params(settings.params_path), settings, host=args.host, port=args.port)


def cmd_summary(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from pipelines import report

    summary = report.collect(load_params(settings.params_path), settings)
    print(report.render(summary, settings))
    return summary


# -- parser --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flywheel", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str, workspace: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
        if workspace:
            p.add_argument("--workspace", help="the DVC workspace (default: $FLYWHEEL_HOME/workspace)")
        p.set_defaults(func=func)
        return p

    p = add("produce", cmd_produce, "write seeded demo events (card transactions with a fraud label)")
    p.add_argument(
        "--to",
        choices=["folder", "kafka", "s3"],
        default="folder",
        help="a folder (--out), a Kafka topic (--topic; brokers from FLYWHEEL_KAFKA_BOOTSTRAP) "
        "or an S3 prefix (--out s3://bucket/prefix; endpoint from AWS_ENDPOINT_URL)",
    )
    p.add_argument("--out", help="folder or fsspec URL to write to (--to s3: default ingest.s3.url)")
    p.add_argument("--topic", help="--to kafka: the topic (default: the first of ingest.kafka.topics)")
    p.add_argument("--partitions", type=int, default=3, help="--to kafka: partitions of a topic it creates")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--task",
        choices=["binary", "regression", "multiclass"],
        default="binary",
        help="binary: card transactions with a fraud label; regression: delivery times "
        "(examples/delivery-times); multiclass: support-ticket queues (examples/support-tickets); "
        "--to folder, JSON Lines",
    )
    p.add_argument("--files", type=int, default=1)
    p.add_argument("--format", choices=["jsonl", "csv", "parquet"], default="jsonl")
    p.add_argument("--batch", default="demo", help="file name prefix; also prefixes the event keys")
    p.add_argument("--start", type=_date, help="first event time (default: 14 days before --end)")
    p.add_argument("--end", type=_date, help="events end before this time (default: today 00:00 UTC)")
    p.add_argument("--covariate-drift", type=_fraction, default=0.0, metavar="0..1")
    p.add_argument("--concept-drift", type=_fraction, default=0.0, metavar="0..1")
    p.add_argument("--malformed-fraction", type=_fraction, default=0.0, metavar="0..1")
    p.add_argument(
        "--concept-change-at",
        type=_date,
        help="an abrupt concept change: the fraud rule before this time, the drifted rule from it on "
        "(a labelled stream for flywheel backtest)",
    )

    p = add("ingest", cmd_ingest, "land new records of the sources; quarantine malformed ones with a reason")
    p.add_argument(
        "--source",
        action="append",
        choices=["files", "kafka", "s3"],
        help="read this source (repeatable; default: ingest.sources in params)",
    )
    p.add_argument("--path", help="files source folder or URL (default: ingest.files.path in params)")
    p.add_argument("--run-id", help="the run's id; a retry with the same id rewrites its own partition")

    add("validate", cmd_validate, "run the validation gate on landed batches")
    p = add(
        "snapshot", cmd_snapshot, "materialise the training window into the DVC workspace", workspace=True
    )
    p.add_argument("--as-of", type=_date, help="last day of the window (default: snapshot.as_of, else today)")
    add("featurize", _stage("featurize"), "split by time and fit preprocessing on train", workspace=True)
    add("train", _stage("train"), "train the PyTorch model, tracked in MLflow", workspace=True)
    add("evaluate", _stage("evaluate"), "score the held-out split; DVC metrics and plots", workspace=True)
    p = add(
        "promote", cmd_promote, "register the model and move 'champion' if the gate passes", workspace=True
    )
    p.add_argument("--force", action="store_true", help="promote regardless of the gate (needs --reason)")
    p.add_argument("--reason", help="why a forced promotion is needed (recorded on the version)")
    p.add_argument("--trigger", default="manual", help="what started this run (recorded on the version)")

    add("init", cmd_init, "create the state folder and the DVC workspace (git, DVC, local remote)")
    p = add("repro", cmd_repro, "run snapshot → featurize → train → evaluate → promote without Airflow")
    p.add_argument(
        "--set",
        type=_assignment,
        action="append",
        metavar="KEY=VALUE",
        help="override a parameter for this run, e.g. --set train.epochs=5",
    )
    add("summary", cmd_summary, "print what the last runs did and where to look")
    p = add("services", cmd_services, "start, stop or show the local Kafka broker and S3 API (by PID)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("names", nargs="*", metavar="NAME", help="kafka, tansu, s3 (default for up: kafka s3)")
    p.add_argument(
        "--port",
        type=_service_port,
        action="append",
        metavar="NAME=PORT",
        help="e.g. --port kafka=9092 --port zookeeper=2181 --port s3=9000 --port tansu=9093",
    )
    p = add(
        "stack",
        cmd_stack,
        "start, stop or show the production topology here: PostgreSQL, Redis, Kafka, S3, MLflow, Celery",
    )
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument(
        "--install", action="store_true", help="apt-get install PostgreSQL and Redis when missing (root)"
    )
    p = add(
        "drift",
        cmd_drift,
        "Evidently drift report of the current window against the champion's training data",
    )
    p.add_argument("--as-of", type=_date, help="last day of the window (default: today)")
    p.add_argument("--run-id", help="the check's id; names its report folder (default: manual__<time>)")
    p = add("score", cmd_score, "score every newly validated event once with the champion; predictions/")
    p.add_argument("--rescore", action="store_true", help="also rescore what an earlier champion scored")
    p.add_argument(
        "--run-id", help="the scoring run's id, recorded on each prediction (default manual__<time>)"
    )
    p = add(
        "performance",
        cmd_performance,
        "the champion's live metric per day: predictions joined with late labels, block-bootstrap intervals",
    )
    p.add_argument("--labels", help="a label file (key and label; Parquet, CSV or JSON lines) to land first")
    p.add_argument("--run-id", help="names the landed labels' partition (default manual__<time>)")
    p = add(
        "backtest",
        cmd_backtest,
        "replay a labelled history on a logical clock and compare retraining policies side by side",
    )
    p.add_argument("--data", required=True, help="a file, folder or fsspec URL of labelled events")
    p.add_argument("--params", help="the params file of the data's schema (default: FLYWHEEL_PARAMS)")
    p.add_argument("--step", default="30d", help="the clock's step in whole days or weeks (default 30d)")
    p.add_argument(
        "--start",
        type=_date,
        help="the first model's date (default: snapshot.window_days after the first event)",
    )
    p.add_argument("--end", type=_date, help="the clock's end (default: the day after the last event)")
    p.add_argument(
        "--policies",
        default="never,every:3,drift,always",
        help="comma-separated: never, every:N, drift, always (default never,every:3,drift,always)",
    )
    p.add_argument(
        "--out", help="folder for backtest.json/.png/.html (default $FLYWHEEL_HOME/backtest/<time>)"
    )
    p.add_argument(
        "--change-at", type=_date, help="a known change in the data: the report says how each policy met it"
    )
    p = add("rollback", cmd_rollback, "put the previous champion back in one step")
    p.add_argument("--reason", required=True, help="why (recorded on both versions and in the alias log)")
    add("status", cmd_status, "aliases, versions with their metrics, and when and why aliases moved")
    p = add("lineage", cmd_lineage, "print the chain from a model back to its source data")
    p.add_argument(
        "model",
        nargs="?",
        default="champion",
        help="models:/<name>/<version>, models:/<name>@<alias>, a version, or an alias (default champion)",
    )
    p = add(
        "reproduce",
        cmd_reproduce,
        "rebuild a model version from its recorded inputs; report metric differences",
    )
    p.add_argument("model", help="models:/<name>/<version>, a version number, or an alias")
    p = add("serve", cmd_serve, "serve the champion over HTTP (/predict, /version, /health), reloading it")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p = add("metrics-exporter", cmd_metrics_exporter, "Flywheel's model and data metrics for Prometheus")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9108, help="TCP port of /metrics (default 9108)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``flywheel`` console script."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = Settings.from_env()
    start = time.perf_counter()
    try:
        summary = args.func(args, settings)
    except (FlywheelError, FileNotFoundError) as exc:  # a missing input file is named by its OSError
        code = getattr(exc, "exit_code", EXIT_FAILED)
        print(
            f"flywheel {args.command}: {'rejected' if code == EXIT_REJECTED else 'error'}: {exc}",
            file=sys.stderr,
        )
        if args.json:
            details = getattr(exc, "summary", None) or {}
            print(
                json.dumps(
                    {"ok": False, "command": args.command, "error": str(exc.args[0]), **details}, default=str
                )
            )
        return code
    summary = {
        "ok": True,
        "command": args.command,
        **summary,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if args.json:
        print(json.dumps(summary, default=str))
    elif args.command not in ("summary", "status", "lineage", "drift", "backtest", "score"):
        print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
