"""S3IngestHook: the S3 API and credentials Flywheel's S3 source reads with, by Connection id."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from pipelines.ingest.endpoints import S3Endpoint

log = logging.getLogger(__name__)


class S3IngestHook(BaseHook):
    """The S3 endpoint of the Connection ``aws_conn_id`` (default ``flywheel_s3``, type ``aws``).

    ``login``/``password`` are the access key id and secret; ``extra`` may set ``endpoint_url``
    (MinIO, a local moto server), ``region_name`` and ``aws_session_token``. What the Connection does
    not set comes from the standard ``AWS_*`` variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...).
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "flywheel_s3"
    conn_type = "aws"
    hook_name = "S3 (Flywheel ingestion)"

    def __init__(self, aws_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id

    def endpoint(self) -> S3Endpoint:
        from pipelines.ingest.endpoints import S3Endpoint

        env = S3Endpoint.from_env()
        try:
            conn = self.get_connection(self.aws_conn_id)
        except Exception:  # no such Connection: the environment decides
            log.info(
                "no Connection %r; S3 endpoint from the environment: %s", self.aws_conn_id, env.describe()
            )
            return env
        extra = conn.extra_dejson
        return S3Endpoint(
            endpoint_url=extra.get("endpoint_url") or env.endpoint_url,
            access_key_id=conn.login or env.access_key_id,
            secret_access_key=conn.password or env.secret_access_key,
            session_token=extra.get("aws_session_token") or env.session_token,
            region=extra.get("region_name") or env.region,
        )
