"""Flywheel: keeps a production model fresh, and shows on your own history that it pays.

One package per stage (``ingest``, ``validate``, ``featurize``, ``train``, ``evaluate``, ``promote``,
``drift``), each exposing ``run(params, settings, ...)``; ``workspace`` owns the DVC workspace,
``common`` the shared infrastructure, ``report`` the run reports, and ``demo`` the tools for trying
Flywheel (never imported by a stage). The ``flywheel`` command is :mod:`pipelines.cli`.
"""
