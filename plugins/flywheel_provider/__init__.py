"""Flywheel's Airflow integration in the provider layout: hooks own clients and settings, operators own control flow."""
