"""The `pyspark` resource: the final tables' Spark session, made on first use.

dagster-pyspark's `LazyPySparkResource` reaches Spark Connect too (a `spark.remote` entry in its
`spark_config` sends `SparkSession.builder` to the Connect client), but not well enough for us:
that route sets a process-wide switch after which no local session can be made in the same
process, it hands the server every local setting (master, driver options) as session settings,
and against a stopped server the client retries for ten minutes before the run fails. So this
small resource keeps the same `spark_session` property and `spark_config` field and chooses:
a Spark Connect session when `remote` is set (`SIDEARM_SPARK_REMOTE`), else a local session in
the run's process. Neither starts anything until `spark_session` is read.
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr


class SparkSessionResource(ConfigurableResource):
    """Spark for the final tables: the Spark Connect server at `remote` (sc://host:port) when it
    is set, else a local session with `spark_config` (a JVM in the run's process)."""

    spark_config: dict[str, Any]
    remote: str = ""

    _session: Any = PrivateAttr(default=None)

    @property
    def spark_session(self) -> Any:
        """The session, made on first use; `final_spark.SparkUnavailableError` names a server
        that cannot be reached."""
        if self._session is None:
            from sidearm_assets.storage import final_spark

            if self.remote.strip():
                self._session = final_spark.connect_session(self.remote.strip())
            else:
                self._session = final_spark.local_session({k: str(v) for k, v in self.spark_config.items()})
        return self._session

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        # A Connect session holds state on the server until released; a local one ends with the
        # run's process (stopping it here would also stop a session a test shares).
        if self._session is not None and self.remote.strip():
            from sidearm_assets.storage import final_spark

            try:
                final_spark.close_session(self._session)
            except Exception as exc:  # the run's result stands; the server drops idle sessions
                context.log.warning(f"could not release the Spark Connect session: {exc}")


def spark_resource(master: str | None = None, remote: str | None = None) -> SparkSessionResource:
    """The `pyspark` resource: a Spark session made on first use, on the Spark Connect server
    `remote` (default: the `SIDEARM_SPARK_REMOTE` setting) when there is one, else local."""
    from sidearm_assets import settings
    from sidearm_assets.storage.final_spark import spark_config

    return SparkSessionResource(
        spark_config=spark_config(master),
        remote=settings.setting(settings.SPARK_REMOTE) if remote is None else remote,
    )
