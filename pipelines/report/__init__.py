"""Run reports: what each DAG run did, and the summary ``make run`` ends with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.common.exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.report.summary import collect, latest, latest_all, render, report_dir, write

_API = {
    "write": "summary",
    "latest": "summary",
    "latest_all": "summary",
    "collect": "summary",
    "render": "summary",
    "report_dir": "summary",
}
__all__ = ["collect", "latest", "latest_all", "render", "report_dir", "write"]
__getattr__ = lazy_exports(__name__, _API)
