"""What every stage shares: typed params, settings, errors, the lake, I/O helpers and the MLflow connection.

Imports no stage.
"""
