"""What `make run` calls: ``python -m pipelines.demo.airflow_runner start | trigger | wait | stop``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from pipelines.common.errors import FlywheelError
from pipelines.demo.airflow_runner import processes, rest


def build_parser() -> argparse.ArgumentParser:
    """``start``, ``trigger``, ``wait`` and ``stop``; each acts on the Airflow of ``$AIRFLOW_HOME``."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.demo.airflow_runner", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="start the DAG processor, scheduler and API server in the background")
    p.add_argument("--port", type=int, default=None, help="API port on 127.0.0.1 (default: a free one)")
    p.add_argument(
        "--dag",
        action="append",
        default=[],
        help="wait until this DAG is parsed, then unpause it (its due cron slot runs at once); repeatable",
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds for each of these waits (default 600)"
    )
    p = sub.add_parser(
        "trigger", help="run a DAG and wait for it, then for the asset-triggered runs after it"
    )
    p.add_argument("dag_id")
    p.add_argument("--conf", type=json.loads, default=None, help="the run's conf, as JSON")
    p.add_argument(
        "--then",
        nargs="+",
        default=[],
        metavar="DAG_ID",
        help="then wait for the asset-triggered run of each of these DAGs, in order",
    )
    p.add_argument(
        "--timeout", type=float, default=1200.0, help="seconds to wait for each run (default 1200)"
    )
    p = sub.add_parser("wait", help="wait for the asset-triggered run of a DAG created after a time")
    p.add_argument("dag_id")
    p.add_argument("--after", required=True, help="ISO time, e.g. 2026-11-21T10:00:00Z")
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds to wait (default 1200)")
    p = sub.add_parser("stop", help="stop, by PID, what `start` started")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL (default 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit 1 with a clear message when Airflow or a run fails, 130 on Ctrl-C."""
    args = build_parser().parse_args(argv)
    home = processes.airflow_home()
    try:
        if args.command == "start":
            processes.start(home, args.dag, port=args.port, timeout_s=args.timeout)
        elif args.command == "trigger":
            api, check = processes.connect(home), processes.process_check(home)
            rest.trigger_and_follow(api, args.dag_id, args.conf, args.then, args.timeout, check=check)
        elif args.command == "wait":
            api, check = processes.connect(home), processes.process_check(home)
            rest.wait_asset_triggered(api, args.dag_id, args.after, args.timeout, check=check)
        else:
            processes.stop(home, args.timeout)
    except FlywheelError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted at {datetime.now(UTC):%H:%M:%S} UTC", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
