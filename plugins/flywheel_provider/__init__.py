"""Flywheel's Airflow integration in the provider layout.

Hooks own clients and settings, operators own control flow, ``tasks/`` holds the task bodies per DAG.
"""
