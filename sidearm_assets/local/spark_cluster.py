"""A standalone Spark cluster on loopback, from the pyspark wheel's own `sbin` scripts: a master,
workers, and a Spark Connect server submitting to that master, the shape of docker-compose.yaml's
`spark-master`, `spark-worker` and `spark-connect` services (docs/production.md). Tests and
benchmarks run the final tables on it to exercise the distributed path for real; a run reaches it
with `SIDEARM_SPARK_REMOTE=<cluster.connect_url>`.

```python
with running_cluster(directory, workers=2) as cluster:
    cluster.connect_url          # sc://127.0.0.1:<port>
    cluster.master_status()      # the master's /json: workers, apps
    cluster.executors()          # the Connect application's executors (REST API of its UI)
```

The wheel ships `sbin/spark-daemon.sh` and `sbin/start-connect-server.sh` (not the
`start-master.sh`/`start-worker.sh` of a Spark distribution): the master and each worker are
`spark-daemon.sh start <class> <instance>`, the Connect server `start-connect-server.sh`. Each
script daemonizes its JVM and writes its pid to `DIRECTORY/pids`; we record that pid with its
identity (processes.identity) and stop it ourselves, never through the scripts' `stop`: SIGTERM,
then SIGKILL after a grace period, then SIGKILL to whatever is left in the script's session (a
worker's executors). Every port is picked free on 127.0.0.1; logs are in `DIRECTORY/logs`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sidearm_assets.local import processes

HOST = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
IDENT = "sidearm"  # SPARK_IDENT_STRING: part of the pid and log file names
START_TIMEOUT = 240.0  # four JVMs on two busy cores
STOP_GRACE = 10.0
# JVMs that live minutes and run small jobs: the client JIT only, the serial collector (as
# final_spark.spark_config for a local session).
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


class SparkClusterError(RuntimeError):
    """The cluster did not come up; the message names the part and the tail of its log."""


@dataclass(frozen=True)
class Daemon:
    name: str  # master, worker-1, ..., connect
    pid: int
    session: int  # the session of the script that started it: the JVM and what it spawned
    identity: processes.Identity
    log: Path


@dataclass
class SparkCluster:
    directory: Path
    master_url: str  # spark://127.0.0.1:<port>
    master_ui: str  # http://127.0.0.1:<port>
    connect_url: str  # sc://127.0.0.1:<port>
    connect_ui: str  # the Connect server's (driver's) web UI, for its REST API
    daemons: list[Daemon] = field(default_factory=list)

    def master_status(self) -> dict:
        """The master's JSON status page: `workers` (with `state`), `activeapps`, `completedapps`."""
        return _get_json(f"{self.master_ui}/json/")

    def executors(self) -> list[dict]:
        """The Connect application's executors (`id`, `hostPort`, `completedTasks`, ...), the
        driver included, from the REST API of its UI."""
        apps = _get_json(f"{self.connect_ui}/api/v1/applications")
        return _get_json(f"{self.connect_ui}/api/v1/applications/{apps[0]['id']}/executors")

    def pids(self) -> list[int]:
        return [d.pid for d in self.daemons]

    def stop(self, grace: float = STOP_GRACE) -> dict[str, str]:
        """Stop the Connect server, the workers, then the master; how each ended."""
        return {d.name: stop_daemon(d, grace) for d in reversed(self.daemons)}


def spark_home() -> Path:
    """The pyspark wheel's Spark distribution (bin/, sbin/, jars/), found without importing pyspark."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SparkClusterError("pyspark is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _env(directory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "MASTER", "SPARK_MASTER")}
    (directory / "conf").mkdir(parents=True, exist_ok=True)  # empty: no spark-env.sh or defaults from elsewhere
    env.update({
        "SPARK_HOME": str(spark_home()),
        "SPARK_CONF_DIR": str(directory / "conf"),
        "SPARK_LOG_DIR": str(directory / "logs"),
        "SPARK_PID_DIR": str(directory / "pids"),
        "SPARK_IDENT_STRING": IDENT,
        "SPARK_LOCAL_IP": HOST,
        "SPARK_DAEMON_MEMORY": "256m",  # the master and workers only schedule
        "SPARK_DAEMON_JAVA_OPTS": QUICK_JVM,
        # No REST submission server: it would take the fixed port 6066, so two clusters would clash.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    })
    return env


def _launch(cmd: list[str], env: dict[str, str], directory: Path, name: str) -> subprocess.Popen:
    """Run an sbin script in its own session (it daemonizes the JVM there and returns)."""
    out = open(directory / "logs" / f"{name}.sbin.log", "ab")
    try:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=directory, start_new_session=True, close_fds=True)
    finally:
        out.close()


def _daemon(directory: Path, name: str, spark_class: str, instance: int, script: subprocess.Popen) -> Daemon:
    """The JVM a finished sbin script started, from its pid file."""
    pid_file = directory / "pids" / f"spark-{IDENT}-{spark_class}-{instance}.pid"
    log = directory / "logs" / f"spark-{IDENT}-{spark_class}-{instance}-{socket.gethostname()}.out"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as exc:
        raise SparkClusterError(f"{name}: no pid file {pid_file} ({exc}); {_tail(directory / 'logs' / f'{name}.sbin.log')}")
    if not processes.alive(pid):
        raise SparkClusterError(f"{name} (pid {pid}) exited at start; log {log}:\n{_tail(log)}")
    return Daemon(name, pid, script.pid, processes.identity(pid), log)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _finish(scripts: dict[str, subprocess.Popen], timeout: float = 60.0) -> None:
    for name, script in scripts.items():
        try:
            script.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SparkClusterError(f"{name}: its sbin script did not return within {timeout:g} s") from None


def start_cluster(
    directory: str | Path, workers: int = 2, worker_cores: int = 1, worker_memory: str = "1g",
    executor_memory: str = "512m", driver_memory: str = "1g", timeout: float = START_TIMEOUT,
) -> SparkCluster:
    """Start a master, `workers` workers and a Connect server submitting to the master; return
    when every worker is ALIVE, the Connect application runs with an executor on each worker, and
    the Connect server listens. On failure, everything started is stopped and SparkClusterError
    says what failed."""
    directory = Path(directory).resolve()
    for sub in ("logs", "pids", "work", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    env = _env(directory)
    sbin = spark_home() / "sbin"
    master_port, master_ui_port, connect_port, connect_ui_port = (free_port() for _ in range(4))
    cluster = SparkCluster(
        directory, f"spark://{HOST}:{master_port}", f"http://{HOST}:{master_ui_port}",
        f"sc://{HOST}:{connect_port}", f"http://{HOST}:{connect_ui_port}",
    )
    deadline = time.monotonic() + timeout
    try:
        script = _launch(["bash", str(sbin / "spark-daemon.sh"), "start", MASTER_CLASS, "1", "--host", HOST,
                          "--port", str(master_port), "--webui-port", str(master_ui_port)], env, directory, "master")
        _finish({"master": script})
        cluster.daemons.append(_daemon(directory, "master", MASTER_CLASS, 1, script))
        _wait(deadline, cluster, "the master's status page", lambda: cluster.master_status().get("status") == "ALIVE")

        scripts = {}
        for i in range(1, workers + 1):
            scripts[f"worker-{i}"] = _launch(
                ["bash", str(sbin / "spark-daemon.sh"), "start", WORKER_CLASS, str(i), "--host", HOST,
                 "--webui-port", str(free_port()), "--cores", str(worker_cores), "--memory", worker_memory,
                 "--work-dir", str(directory / "work" / f"worker-{i}"), cluster.master_url],
                env, directory, f"worker-{i}")
        conf = {
            "spark.connect.grpc.binding.address": HOST,
            "spark.connect.grpc.binding.port": str(connect_port),
            "spark.driver.host": HOST,
            "spark.driver.bindAddress": HOST,
            "spark.ui.port": str(connect_ui_port),
            "spark.port.maxRetries": "0",  # a taken port is an error, not a silent move
            "spark.executor.memory": executor_memory,
            "spark.executor.extraJavaOptions": QUICK_JVM,
            "spark.driver.extraJavaOptions": QUICK_JVM,
            "spark.executor.cores": str(worker_cores),
            "spark.cores.max": str(workers * worker_cores),
            "spark.sql.shuffle.partitions": str(max(2, workers)),
            "spark.sql.adaptive.enabled": "false",
            "spark.sql.warehouse.dir": str(directory / "work" / "spark-warehouse"),
            "spark.local.dir": str(directory / "tmp"),
        }
        connect_cmd = ["bash", str(sbin / "start-connect-server.sh"), "--master", cluster.master_url]
        for key, value in conf.items():
            connect_cmd += ["--conf", f"{key}={value}"]
        # The launcher sizes the Connect server's JVM by SPARK_DAEMON_MEMORY, like the master's.
        scripts["connect"] = _launch(connect_cmd, {**env, "SPARK_DAEMON_MEMORY": driver_memory}, directory, "connect")
        _finish(scripts)
        for i in range(1, workers + 1):
            cluster.daemons.append(_daemon(directory, f"worker-{i}", WORKER_CLASS, i, scripts[f"worker-{i}"]))
        # start-connect-server.sh runs `spark-daemon.sh submit <class> 1`: the pid file names the class.
        cluster.daemons.append(_daemon(directory, "connect", CONNECT_CLASS, 1, scripts["connect"]))

        _wait(deadline, cluster, f"{workers} ALIVE workers",
              lambda: sum(w["state"] == "ALIVE" for w in cluster.master_status()["workers"]) == workers)
        _wait(deadline, cluster, "the Connect server to listen", lambda: _listening(connect_port))
        _wait(deadline, cluster, f"an executor on each of the {workers} workers",
              lambda: len([e for e in cluster.executors() if e["id"] != "driver" and e.get("isActive")]) == workers)
    except BaseException:
        with contextlib.suppress(Exception):
            cluster.stop()
        raise
    return cluster


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait(deadline: float, cluster: SparkCluster, what: str, predicate) -> None:
    while True:
        for d in cluster.daemons:
            if not processes.alive(d.pid):
                raise SparkClusterError(f"{d.name} (pid {d.pid}) died while waiting for {what}; log {d.log}:\n{_tail(d.log)}")
        with contextlib.suppress(Exception):
            if predicate():
                return
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {d.name}: {d.log}\n{_tail(d.log, 8)}" for d in cluster.daemons)
            raise SparkClusterError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.25)


def stop_daemon(daemon: Daemon, grace: float = STOP_GRACE) -> str:
    """SIGTERM to the daemon's JVM (when its pid still runs that very process), SIGKILL after
    `grace` seconds, then SIGKILL to what is left in its script's session; how it ended."""
    how = "already gone"
    if processes.is_same(daemon.pid, daemon.identity):
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGTERM)
        how = "SIGTERM"
        deadline = time.monotonic() + grace
        while processes.alive(daemon.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if processes.alive(daemon.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon.pid, signal.SIGKILL)
            how = f"SIGKILL after {grace:g} s"
    left = processes.session_members(daemon.session)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    processes.wait_until(lambda: not processes.alive(daemon.pid) and not processes.session_members(daemon.session),
                         10, interval=0.05, what=f"{daemon.name} (pid {daemon.pid}) and its session to end")
    return how + (f"; {len(left)} left in its session killed" if left else "")


@contextlib.contextmanager
def running_cluster(directory: str | Path, **options) -> Iterator[SparkCluster]:
    """`start_cluster`, stopped (by pid) on the way out."""
    cluster = start_cluster(directory, **options)
    try:
        yield cluster
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m sidearm_assets.local.spark_cluster DIR [--workers N]`: start a cluster, print the
    setting that points final-tables runs at it, and stop it (by pid) on Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sidearm_assets.local.spark_cluster",
                                     description="A standalone Spark cluster on loopback, until Ctrl-C.")
    parser.add_argument("directory", help="folder for its logs, pid files and work directories")
    parser.add_argument("--workers", type=int, default=2, help="workers, one executor each (default 2)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be 1 or more, got {args.workers}")
    try:
        cluster = start_cluster(args.directory, workers=args.workers)
    except SparkClusterError as exc:
        print(f"spark cluster: error: {exc}", flush=True)
        return 1
    print(f"master {cluster.master_url} (UI {cluster.master_ui}); stop with Ctrl-C", flush=True)
    print(f"SIDEARM_SPARK_REMOTE={cluster.connect_url}", flush=True)
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for name, how in cluster.stop().items():
            print(f"stopped {name}: {how}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
