"""The assets Flywheel's DAGs publish and schedule on (their URIs are part of the interface)."""

from __future__ import annotations

from airflow.sdk import Asset

VALIDATED_EVENTS = Asset("flywheel://validated_events", group="flywheel")
DRIFT_DETECTED = Asset("flywheel://drift_detected", group="flywheel")
