"""The few-line task bodies of Flywheel's DAGs, one module per DAG, calling into ``pipelines``."""
