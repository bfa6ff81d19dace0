"""The three kinds of server the embedded stack runs, one spec object each: its default port,
command line, URL, environment, working folder and readiness check.

- `s3`: moto's S3 backend behind cheroot (`local_s3.py`), answering as S3 at `http://HOST:PORT`.
- `mongo`: nx-27017, a MongoDB wire-protocol server over SQLite, at `mongodb://HOST:PORT`.
- `spark`: the pyspark wheel's Spark Connect server at `sc://HOST:PORT` (ready once it listens:
  the warm-up job that follows is its real test).

Each runs in the foreground, so the pid we start is the server's own. Quirks of the servers are
written down in docs/embedded-stack.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from sidearm_assets import settings
from sidearm_assets.local.stack_state import HOST, StackError

SPARK_CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could bind `host:port` now (SO_REUSEADDR as servers set it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def listening(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ServerKind:
    """What the stack needs to know to run one kind of server in a stack folder."""

    name: str
    default_port: int
    scheme: str
    log_file: str  # in the stack folder: the server's stdout and stderr

    def url(self, port: int) -> str:
        return f"{self.scheme}://{HOST}:{port}"

    def log(self, directory: Path) -> Path:
        return directory / self.log_file

    def command(self, port: int, directory: Path) -> list[str]:
        raise NotImplementedError

    def environment(self, port: int, directory: Path) -> dict[str, str]:
        """The server's environment: this process's, adjusted."""
        return dict(os.environ)

    def prepare(self, directory: Path) -> Path | None:
        """Make the folders the server needs before it starts; returns its working folder, if any."""
        return None

    def answering(self, url: str, timeout: float = 1.0) -> bool:
        """Whether the server at `url` answers as the service it should be."""
        raise NotImplementedError

    def ready(self, port: int) -> bool:
        """Whether a server just started on `port` is up."""
        return self.answering(self.url(port))


class S3Server(ServerKind):
    name, default_port, scheme, log_file = "s3", 9000, "http", "s3.log"

    def command(self, port: int, directory: Path) -> list[str]:
        return [sys.executable, "-m", "sidearm_assets.local.local_s3", "--host", HOST, "--port", str(port)]

    def environment(self, port: int, directory: Path) -> dict[str, str]:
        return {**os.environ, "MOTO_PORT": str(port)}  # moto builds some URLs from it

    def answering(self, url: str, timeout: float = 1.0) -> bool:
        import urllib.error
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        try:
            with opener.open(url + "/", timeout=timeout) as resp:
                return b"ListAllMyBucketsResult" in resp.read()
        except (urllib.error.URLError, OSError, ValueError):
            return False


class MongoServer(ServerKind):
    name, default_port, scheme, log_file = "mongo", 27017, "mongodb", "mongo.console.log"  # tracebacks land here

    @staticmethod
    def data_dir(directory: Path) -> Path:
        return directory / "mongo"

    @staticmethod
    def pidfile(directory: Path) -> Path:
        return directory / "mongo.pid"

    def command(self, port: int, directory: Path) -> list[str]:
        # Foreground mode (no -d): nx-27017 stays the child we started, so the pid we hold is real.
        return _console_script("nx-27017", "nx_27017.nx_27017") + [
            "--data-dir", str(self.data_dir(directory)),
            "--host", HOST,
            "-p", str(port),
            "--log-file", str(directory / "mongo.log"),  # nx-27017's own log
            "--pid-file", str(self.pidfile(directory)),
        ]

    def prepare(self, directory: Path) -> Path | None:
        self.data_dir(directory).mkdir(parents=True, exist_ok=True)
        # A pid file left by a killed server makes nx-27017 refuse to start if that pid was reused.
        self.pidfile(directory).unlink(missing_ok=True)
        return None

    def answering(self, url: str, timeout: float = 1.0) -> bool:
        import pymongo
        from pymongo.errors import PyMongoError

        client = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
        )
        try:
            return client.admin.command("ping").get("ok") == 1
        except PyMongoError:
            return False
        finally:
            client.close()


class SparkConnectServer(ServerKind):
    name, default_port, scheme, log_file = "spark", 15002, "sc", "spark.log"  # log4j writes to stderr

    @staticmethod
    def work_dir(directory: Path) -> Path:
        return directory / "spark"  # spark-warehouse, scratch space

    def command(self, port: int, directory: Path) -> list[str]:
        """spark-submit of the Connect server in the foreground. spark-submit and spark-class `exec`
        the JVM, so the pid we start is the server's own. Loopback only, no UI; the two SQL settings
        suit the final tables' small job (they are also set per session)."""
        work = self.work_dir(directory)
        conf = {
            "spark.connect.grpc.binding.address": HOST,
            "spark.connect.grpc.binding.port": str(port),
            "spark.driver.host": HOST,
            "spark.driver.bindAddress": HOST,
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.adaptive.enabled": "false",
            "spark.port.maxRetries": "0",  # a taken port is an error, not a silent move to the next one
            "spark.sql.warehouse.dir": str(work / "spark-warehouse"),
            "spark.local.dir": str(work / "tmp"),
        }
        cmd = ["bash", str(spark_home() / "bin" / "spark-submit"), "--class", SPARK_CONNECT_CLASS,
               "--name", "sidearm-spark-connect", "--master", settings.SPARK_MASTER.value()]
        for key, value in conf.items():
            cmd += ["--conf", f"{key}={value}"]
        return cmd

    def environment(self, port: int, directory: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["SPARK_HOME"] = str(spark_home())
        env["SPARK_CONNECT_MODE"] = "0"  # as sbin/start-connect-server.sh: this JVM is the server
        for var in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "MASTER"):
            env.pop(var, None)
        return env

    def prepare(self, directory: Path) -> Path | None:
        work = self.work_dir(directory)
        work.mkdir(parents=True, exist_ok=True)
        return work

    def answering(self, url: str, timeout: float = 1.0) -> bool:
        """A Spark Connect session asks the server its version."""
        from sidearm_assets.storage import final_spark

        if not listening(final_spark.parse_remote(url)[1], timeout=timeout):
            return False
        try:
            session = final_spark.connect_session(url, timeout=timeout, shared=False)
            try:
                return bool(session.version)
            finally:
                final_spark.close_session(session)
        except Exception:
            return False

    def ready(self, port: int) -> bool:
        return listening(port)


S3 = S3Server()
MONGO = MongoServer()
SPARK = SparkConnectServer()
KINDS: dict[str, ServerKind] = {k.name: k for k in (S3, MONGO, SPARK)}  # in start and status order
STORES = (S3.name, MONGO.name)  # always started together; Spark is optional and stateless


def kind(name: str) -> ServerKind:
    try:
        return KINDS[name]
    except KeyError:
        raise StackError(f"no server kind {name!r}; the stack runs {', '.join(KINDS)}") from None


def spark_home() -> Path:
    """The pyspark wheel's Spark distribution (bin/, jars/ with the Connect server), found without
    importing pyspark."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("pyspark is not installed; install the project, or use --no-spark")
    return Path(list(spec.submodule_search_locations)[0])


def _console_script(name: str, module: str) -> list[str]:
    """The venv's console script next to this Python, else `python -m module`."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", module]
