"""Helpers shared by the test tiers: paths, installations, datasets, services.

Fixtures live in tests/conftest.py.
"""
