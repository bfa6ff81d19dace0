"""What a final-tables run would otherwise load first, loaded once by the run launcher's fork
server (`local_instance.RUN_PRELOAD`, `launcher.py`): the Spark Connect client, boto3's S3 model
(a first client costs about 0.6 s on a two-core machine; later ones reuse the default session's
loaded model), and the lake's Parquet, S3 file system and DuckDB modules.

Importing it starts no thread and opens no connection: the client below is never called."""

import boto3
import duckdb  # noqa: F401
import pyarrow.fs  # noqa: F401
import pyarrow.parquet  # noqa: F401
import pyspark.sql.connect.session  # noqa: F401

boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
             aws_access_key_id="warm-up", aws_secret_access_key="warm-up")
