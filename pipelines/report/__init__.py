"""Run reports: what each DAG run did, and the summary ``make run`` ends with."""

from pipelines.report.summary import collect, latest, render, write

__all__ = ["write", "latest", "collect", "render"]
