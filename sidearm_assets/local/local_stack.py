"""`sidearm-local`: the embedded stack (SPEC 1, right column) on one machine, no Docker.

`up` starts servers on 127.0.0.1 as detached children whose pids we record: moto's S3 server
(the bucket `gamestreams`), nx-27017, a MongoDB wire-protocol server over SQLite (the
`sidearm.boxscores` collection), and, unless `--no-spark`, the pyspark wheel's Spark Connect
server, warmed with the final-tables job right after it listens so the first real run finds a
hot JVM (`SIDEARM_SPARK_REMOTE`). It creates the SQLite `sidearmdb` with the base data, waits
until the servers answer, writes `DIR/sidearm.env` and prints `export NAME=value` for every
setting, so `eval "$(sidearm-local up --dir DIR)"` configures a shell. `down` stops exactly the
recorded pids, after checking each still is the process we started (a pid can be reused).
`status` says what runs where. Human messages go to stderr; stdout carries only the exports.

The same functions (`start_stack`, `stop_stack`, `stack_status`) serve the tests and benchmarks.
Quirks of both servers are written down in docs/embedded-stack.md.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sidearm_assets import settings
from sidearm_assets.local import processes

HOST = "127.0.0.1"
DEFAULT_DIR = ".sidearm"
DEFAULT_PORTS = {"s3": 9000, "mongo": 27017, "spark": 15002}
STATE_FILE = "stack.json"
ENV_FILE = "sidearm.env"
SQLITE_FILE = "sidearmdb.sqlite"
LOCK_FILE = ".stack.lock"
READY_TIMEOUT = 60.0  # seconds; moto needs a few on a busy two-core machine
SPARK_READY_TIMEOUT = 180.0  # the Connect server listens after 10-20 s on two idle cores
WARM_ROUNDS = 3  # final-tables jobs run on a new Spark server, each in a new session (JIT warm-up)
SPARK_CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
PORT_ATTEMPTS = 3  # a free port can be taken between our check and the server's bind

# The stack owns these values; the rest (bucket, database name, Spark master, DELAY) follow the
# caller's environment. Credentials are the embedded defaults on purpose: a production secret
# exported in the same shell must never be written into DIR/sidearm.env. SIDEARM_SPARK_REMOTE is
# the stack's too: its server's URL, or empty without one (a stale URL is never re-exported).
SERVICES = ("s3", "mongo")  # the stores; always started together
SPARK = "spark"  # the optional Spark Connect server (stateless: restarted on its own)
ALL_SERVICES = (*SERVICES, SPARK)


class StackError(RuntimeError):
    """The stack could not be started or stopped; the message says why and where the logs are."""


@dataclass
class Service:
    """One server we started: enough to find it, reach it and prove a pid is still ours."""

    name: str
    pid: int
    port: int
    url: str
    cmdline: list[str]  # as /proc/PID/cmdline showed it once the server answered
    proc_start: int | None  # /proc/PID/stat start time (clock ticks since boot); None off Linux
    started_at: str  # ISO time, for people
    log: str


@dataclass
class StackInfo:
    directory: Path
    services: dict[str, Service]
    env: dict[str, str]
    reused: bool = False

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.services.values()]


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    url: str | None
    state: str  # answering | not answering | gone | pid reused | not recorded | off (no Spark asked)
    log: str | None = None

    @property
    def ok(self) -> bool:
        return self.state in ("answering", "off")


@dataclass
class StopReport:
    stopped: list[str] = field(default_factory=list)  # "s3 (pid 123, SIGTERM)"
    skipped: list[str] = field(default_factory=list)  # recorded but no longer ours


def _say(message: str) -> None:
    print(f"sidearm-local: {message}", file=sys.stderr, flush=True)


def _paths(directory: Path) -> dict[str, Path]:
    d = directory
    return {
        "state": d / STATE_FILE,
        "env": d / ENV_FILE,
        "sqlite": d / SQLITE_FILE,
        "lock": d / LOCK_FILE,
        "mongo_data": d / "mongo",
        "mongo_log": d / "mongo.log",  # nx-27017's own log (--log-file)
        "mongo_console": d / "mongo.console.log",  # its stdout/stderr: tracebacks land here
        "mongo_pidfile": d / "mongo.pid",
        "s3_log": d / "s3.log",
        "spark_log": d / "spark.log",  # the Spark Connect server's console (log4j to stderr)
        "spark_work": d / "spark",  # its working folder: spark-warehouse, scratch space
    }


def read_state(directory: str | os.PathLike) -> dict | None:
    path = Path(directory).resolve() / STATE_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise StackError(f"{path} is not valid JSON ({exc}); remove it after checking no server runs")


def _write_state(directory: Path, services: dict[str, Service], env: dict[str, str]) -> None:
    state = {
        "version": 1,
        "dir": str(directory),
        "host": HOST,
        "services": {name: asdict(s) for name, s in services.items()},
        "env": env,
    }
    path = _paths(directory)["state"]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


def _services_from_state(state: dict | None) -> dict[str, Service]:
    if not state:
        return {}
    return {name: Service(**raw) for name, raw in state.get("services", {}).items()}


@contextlib.contextmanager
def _locked(directory: Path):
    """One `up`/`down` at a time per DIR."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    with open(_paths(directory)["lock"], "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_ours(service: Service) -> bool:
    """The recorded pid still runs the very process we started: same start time and command line."""
    return processes.is_same(service.pid, processes.Identity(service.proc_start, service.cmdline))


def _stop_pid(pid: int, grace: float) -> str:
    """SIGTERM, then SIGKILL after `grace` seconds; returns the signal that ended it."""
    try:
        return processes.stop(pid, grace, group=False)
    except processes.ProcessError as exc:
        raise StackError(str(exc)) from exc


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


def _choose_port(name: str, wanted: int | None, previous: int | None) -> tuple[int, bool]:
    """(port, may fall back): an explicit port is used as is; otherwise the previous run's port,
    then the default, then any free port."""
    if wanted:
        return wanted, False
    if wanted == 0:
        return free_port(), True
    for candidate in (previous, DEFAULT_PORTS[name]):
        if candidate and port_free(candidate):
            return candidate, True
    port = free_port()
    _say(f"port {DEFAULT_PORTS[name]} is taken; {name} uses {port}")
    return port, True


def _console_script(name: str, module: str) -> list[str]:
    """The venv's console script next to this Python, else `python -m module`."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", module]


def spark_home() -> Path:
    """The pyspark wheel's Spark distribution (bin/, jars/ with the Connect server), found without
    importing pyspark."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("pyspark is not installed; install the project, or use --no-spark")
    return Path(list(spec.submodule_search_locations)[0])


def _spark_command(port: int, paths: dict[str, Path]) -> list[str]:
    """spark-submit of the Connect server in the foreground. spark-submit and spark-class `exec`
    the JVM, so the pid we start is the server's own. Loopback only, no UI; the two SQL settings
    suit the final tables' small job (they are also set per session)."""
    work = paths["spark_work"]
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


def _command(name: str, port: int, paths: dict[str, Path]) -> tuple[list[str], Path]:
    """Command line and the file receiving its stdout/stderr."""
    if name == SPARK:
        return _spark_command(port, paths), paths["spark_log"]
    if name == "s3":
        return [sys.executable, "-m", "sidearm_assets.local.local_s3", "--host", HOST, "--port", str(port)], paths["s3_log"]
    # Foreground mode (no -d): nx-27017 stays the child we started, so the pid we hold is real.
    return (
        _console_script("nx-27017", "nx_27017.nx_27017")
        + [
            "--data-dir", str(paths["mongo_data"]),
            "--host", HOST,
            "-p", str(port),
            "--log-file", str(paths["mongo_log"]),
            "--pid-file", str(paths["mongo_pidfile"]),
        ],
        paths["mongo_console"],
    )


def _url(name: str, port: int) -> str:
    if name == SPARK:
        return f"sc://{HOST}:{port}"
    return f"http://{HOST}:{port}" if name == "s3" else f"mongodb://{HOST}:{port}"


def listening(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def answering(name: str, url: str, timeout: float = 1.0) -> bool:
    """Whether the server at `url` answers as the service it should be (for Spark: a Spark
    Connect session asks the server its version)."""
    if name == SPARK:
        from sidearm_assets.storage import final_spark

        if not listening(final_spark.parse_remote(url)[1], timeout=timeout):
            return False
        try:
            session = final_spark.connect_session(url, timeout=timeout)
            try:
                return bool(session.version)
            finally:
                final_spark.close_session(session)
        except Exception:
            return False
    if name == "s3":
        import urllib.error
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        try:
            with opener.open(url + "/", timeout=timeout) as resp:
                return b"ListAllMyBucketsResult" in resp.read()
        except (urllib.error.URLError, OSError, ValueError):
            return False
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


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _spawn(name: str, port: int, paths: dict[str, Path]) -> tuple[subprocess.Popen, list[str], Path]:
    cmd, log_path = _command(name, port, paths)
    cwd = None
    if name == "mongo":
        paths["mongo_data"].mkdir(parents=True, exist_ok=True)
        # A pid file left by a killed server makes nx-27017 refuse to start if that pid was reused.
        paths["mongo_pidfile"].unlink(missing_ok=True)
    env = dict(os.environ)
    if name == "s3":
        env["MOTO_PORT"] = str(port)  # moto builds some URLs from it
    if name == SPARK:
        cwd = paths["spark_work"]
        cwd.mkdir(parents=True, exist_ok=True)
        env["SPARK_HOME"] = str(spark_home())
        env["SPARK_CONNECT_MODE"] = "0"  # as sbin/start-connect-server.sh: this JVM is the server
        for var in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE", "MASTER"):
            env.pop(var, None)
    proc = processes.spawn(cmd, log_path, env=env, cwd=cwd, header=True)
    return proc, cmd, log_path


def _record(name: str, proc: subprocess.Popen, port: int, cmd: list[str], log: Path) -> Service:
    ident = processes.identity(proc.pid, cmd)
    return Service(
        name=name,
        pid=proc.pid,
        port=port,
        url=_url(name, port),
        cmdline=ident.cmdline,
        proc_start=ident.start,
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        log=str(log),
    )


def _port_in_use_error(log: Path) -> bool:
    text = _tail(log, 40)
    return "Address already in use" in text or f"[Errno {errno.EADDRINUSE}]" in text


def _ready(name: str, port: int) -> bool:
    """Whether a server we just started is up: S3 and Mongo answer as themselves; the Spark server
    listens (the warm-up job that follows is its real test)."""
    return listening(port) if name == SPARK else answering(name, _url(name, port))


def _start_servers(
    directory: Path,
    wanted: dict[str, int | None],
    previous: dict[str, Service],
    timeouts: dict[str, float],
) -> dict[str, Service]:
    """Start the servers named in `timeouts` at once and wait until each is up within its own
    timeout; on failure stop what was started."""
    paths = _paths(directory)
    names = [n for n in ALL_SERVICES if n in timeouts]
    started: dict[str, tuple[subprocess.Popen, int, list[str], Path, bool]] = {}
    services: dict[str, Service] = {}
    attempts = {name: 0 for name in names}
    try:
        for name in names:
            prev = previous.get(name)
            port, may_fall_back = _choose_port(name, wanted.get(name), prev.port if prev else None)
            if not may_fall_back and not port_free(port):
                raise StackError(f"{name}: port {port} was asked for but is taken")
            proc, cmd, log = _spawn(name, port, paths)
            started[name] = (proc, port, cmd, log, may_fall_back)
        began = time.monotonic()
        while len(services) < len(names):
            for name, (proc, port, cmd, log, may_fall_back) in list(started.items()):
                if name in services:
                    continue
                if proc.poll() is not None:
                    attempts[name] += 1
                    if may_fall_back and _port_in_use_error(log) and attempts[name] < PORT_ATTEMPTS:
                        port = free_port()
                        _say(f"{name}: port was taken meanwhile; retrying on {port}")
                        proc, cmd, log = _spawn(name, port, paths)
                        started[name] = (proc, port, cmd, log, may_fall_back)
                        continue
                    raise StackError(
                        f"{name} server exited with code {proc.returncode} before answering; "
                        f"log {log}:\n{_tail(log)}"
                    )
                if _ready(name, port):
                    services[name] = _record(name, proc, port, cmd, log)
            if len(services) < len(names):
                late = [n for n in names if n not in services and time.monotonic() - began > timeouts[n]]
                if late:
                    logs = ", ".join(str(started[n][3]) for n in late)
                    waited = ", ".join(f"{timeouts[n]:g} s" for n in late)
                    raise StackError(f"{', '.join(late)} did not answer within {waited}; see {logs}")
                time.sleep(0.2)
        return {name: services[name] for name in names}
    except BaseException:
        for proc, *_ in started.values():
            if proc.poll() is None:
                with contextlib.suppress(StackError):
                    _stop_pid(proc.pid, STOP_GRACE)
            with contextlib.suppress(Exception):
                proc.wait(timeout=1)
        raise


def stack_env(directory: Path, services: dict[str, Service]) -> dict[str, str]:
    """Every setting in `settings.ALL_SETTINGS`, pointing at this stack, plus `DAGSTER_HOME`
    (a local instance in DIR/dagster_home tuned for live latency, see local_instance.py)."""
    from sidearm_assets.local.local_instance import write_local_instance

    own = {
        settings.S3_ENDPOINT_URL.name: services["s3"].url,
        settings.S3_ACCESS_KEY.name: settings.S3_ACCESS_KEY.default,
        settings.S3_SECRET_KEY.name: settings.S3_SECRET_KEY.default,
        settings.MONGO_URI.name: services["mongo"].url,
        settings.SQL_URL.name: f"sqlite:///{_paths(directory)['sqlite']}",  # absolute: 4 slashes
        settings.SPARK_REMOTE.name: services[SPARK].url if SPARK in services else "",
    }
    env = {s.name: own[s.name] if s.name in own else s.value() for s in settings.ALL_SETTINGS}
    env["DAGSTER_HOME"] = str(write_local_instance(directory / "dagster_home"))
    return env


def _write_env_file(directory: Path, env: dict[str, str]) -> None:
    lines = [f"# written by sidearm-local up --dir {directory}; `sidearm-local down` stops the stack"]
    lines += [f"{name}={value}" for name, value in env.items()]
    _paths(directory)["env"].write_text("\n".join(lines) + "\n")


def export_lines(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())


def _prepare_data(directory: Path, env: dict[str, str], reset: bool) -> None:
    """The bucket and the SQLite sidearmdb; base tables are reset only on a fresh start."""
    from sidearm_assets.storage import clients, reference_db

    s3 = clients.s3_client(
        env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name], env[settings.S3_SECRET_KEY.name]
    )
    if clients.ensure_bucket(s3, env[settings.S3_BUCKET.name]):
        _say(f"created bucket {env[settings.S3_BUCKET.name]}")
    sqlite_path = _paths(directory)["sqlite"]
    if reset or not sqlite_path.exists():
        engine = reference_db.make_engine(env[settings.SQL_URL.name])
        try:
            summary = reference_db.reset_base_tables(engine)
        finally:
            engine.dispose()
        _say(f"sidearmdb {sqlite_path}: {summary.teams} teams, {summary.players} players (base data)")


def warm_spark(url: str, rounds: int = WARM_ROUNDS) -> list[float]:
    """Run the final-tables job on the Spark Connect server at `url` `rounds` times, each in a new
    session as a run would, and check the result against the plain-Python computation; returns
    each job's seconds. A new server's first job takes seconds of JIT compilation; warmed, the
    runs' jobs take about one."""
    from sidearm_assets.storage import final_spark, reference_db
    from sidearm_assets.domain.facts import game_facts
    from sidearm_assets.domain.final import CompletedGame, Shot

    players = [dict(p) for p in reference_db.BASE_PLAYERS]
    teams = [dict(t) for t in reference_db.BASE_TEAMS]
    home, away = teams[0]["id"], teams[1]["id"]
    numbers = {t: [p["number"] for p in players if p["teamid"] == t] for t in (home, away)}
    shots = [Shot(home, numbers[home][0], 1), Shot(away, numbers[away][0], 0), Shot(away, "99", 1),
             Shot(home, numbers[home][-1], 1), Shot(home, numbers[home][0], 0)]
    games = [CompletedGame("sidearm-local-warm-up", home, away, "00:00", tuple(shots))]
    want = game_facts(games, players)
    seconds = []
    for _ in range(rounds):
        started = time.monotonic()
        session = final_spark.connect_session(url, timeout=5.0)
        try:
            got = final_spark.compute_game_facts(session, games, players)
        finally:
            with contextlib.suppress(Exception):
                final_spark.close_session(session)
        seconds.append(time.monotonic() - started)
        if got != want:
            raise StackError(f"the Spark Connect server at {url} computed wrong game facts in its warm-up job")
    return seconds


def _warm_or_stop(spark: Service) -> None:
    """Warm the new Spark server; when that fails (or is interrupted) stop it and say why."""
    try:
        seconds = warm_spark(spark.url)
    except BaseException as exc:
        with contextlib.suppress(StackError):
            _stop_pid(spark.pid, STOP_GRACE)
        if isinstance(exc, Exception) and not isinstance(exc, StackError):
            raise StackError(
                f"the Spark Connect server's warm-up job failed, server stopped: {exc}; log {spark.log}"
            ) from exc
        raise
    _say(f"spark warm: the final-tables job took {', '.join(f'{s:.1f}' for s in seconds)} s")


def start_stack(
    directory: str | os.PathLike = DEFAULT_DIR,
    s3_port: int | None = None,
    mongo_port: int | None = None,
    timeout: float = READY_TIMEOUT,
    *,
    spark: bool = False,
    spark_port: int | None = None,
    spark_timeout: float = SPARK_READY_TIMEOUT,
) -> StackInfo:
    """Start the stack in `directory`, or reuse it when its recorded servers still answer.

    Ports: None = the previous run's, else the default, else a free one; 0 = any free port;
    a number = exactly that port (an error when taken). `spark`: also run the Spark Connect
    server (warmed before this returns); a running one is stopped when not asked for. The Spark
    server is stateless, so it is started or stopped on its own while the stores are reused.
    """
    directory = Path(directory).resolve()
    with _locked(directory):
        recorded = _services_from_state(read_state(directory))
        stores = {name: s for name, s in recorded.items() if name in SERVICES}
        old_spark = recorded.get(SPARK)
        if set(stores) == set(SERVICES) and all(_is_ours(s) and answering(s.name, s.url) for s in stores.values()):
            services = dict(stores)
            spark_ok = old_spark is not None and _is_ours(old_spark) and answering(SPARK, old_spark.url)
            if old_spark is not None and not (spark and spark_ok):
                for line in _stop_services(directory, {SPARK: old_spark}, STOP_GRACE, drop_state=False).stopped:
                    _say(f"stopped {line}")
            if spark and spark_ok:
                services[SPARK] = old_spark
            elif spark:
                timeouts = {SPARK: spark_timeout}
                new = _start_servers(directory, {SPARK: spark_port}, recorded, timeouts)[SPARK]
                _warm_or_stop(new)
                services[SPARK] = new
                _say(f"spark answers at {new.url} (pid {new.pid}, log {new.log})")
            env = stack_env(directory, services)
            _prepare_data(directory, env, reset=False)
            _write_state(directory, services, env)
            _write_env_file(directory, env)
            _say(f"reusing the running stack in {directory}")
            return StackInfo(directory, services, env, reused=True)
        if recorded:
            _stop_services(directory, recorded, STOP_GRACE)  # a half-dead stack starts over
        timeouts = {"s3": timeout, "mongo": timeout, **({SPARK: spark_timeout} if spark else {})}
        ports = {"s3": s3_port, "mongo": mongo_port, SPARK: spark_port}
        services = _start_servers(directory, ports, recorded, timeouts)  # all at once: Spark is slowest
        env = stack_env(directory, services)
        _write_state(directory, services, env)  # recorded first, so `down` can stop them whatever follows
        _prepare_data(directory, env, reset=True)
        if spark:
            try:
                _warm_or_stop(services[SPARK])
            except BaseException:
                del services[SPARK]
                _write_state(directory, services, stack_env(directory, services))
                raise
        _write_env_file(directory, env)
        for s in services.values():
            _say(f"{s.name} answers at {s.url} (pid {s.pid}, log {s.log})")
        return StackInfo(directory, services, env, reused=False)


def _stop_services(
    directory: Path, services: dict[str, Service], grace: float, drop_state: bool = True
) -> StopReport:
    report = StopReport()
    for name, service in services.items():
        if not processes.alive(service.pid):
            report.skipped.append(f"{name} (pid {service.pid}) had already stopped")
        elif not _is_ours(service):
            report.skipped.append(f"{name}: pid {service.pid} now runs another program; left alone")
        else:
            how = _stop_pid(service.pid, grace)
            report.stopped.append(f"{name} (pid {service.pid}, {how})")
    if drop_state:
        _paths(directory)["state"].unlink(missing_ok=True)
    return report


def restart_service(
    directory: str | os.PathLike, name: str, down_seconds: float = 0.0, grace: float = STOP_GRACE,
    timeout: float = READY_TIMEOUT,
) -> Service:
    """Stop one recorded server by pid, keep it down `down_seconds` (an outage, for fault tests and
    drills), start it again on the same port, and return it once it answers; the rest of the stack
    is left alone and the state file follows the new pid. A store restarted this way starts empty
    (moto keeps objects in memory)."""
    directory = Path(directory).resolve()
    with _locked(directory):
        state = read_state(directory)
        services = _services_from_state(state)
        if state is None or name not in services:
            raise StackError(f"{name} is not recorded in {directory}")
        old = services[name]
        if _is_ours(old):
            _stop_pid(old.pid, grace)
        time.sleep(down_seconds)
        proc, cmd, log = _spawn(name, old.port, _paths(directory))
        try:
            processes.wait_until(lambda: _ready(name, old.port), timeout=timeout, what=f"{name} answering again")
        except TimeoutError as exc:
            _stop_pid(proc.pid, grace)
            raise StackError(f"{exc}; log {log}:\n{_tail(log)}") from None
        services[name] = _record(name, proc, old.port, cmd, log)
        _write_state(directory, services, state["env"])
        return services[name]


def stop_stack(
    directory: str | os.PathLike = DEFAULT_DIR, grace: float = STOP_GRACE, only: tuple[str, ...] | None = None
) -> StopReport:
    """Stop exactly the recorded servers that are still ours; harmless when nothing runs.
    `only` (e.g. `("spark",)`) stops those and keeps the rest of the stack recorded."""
    directory = Path(directory).resolve()
    if not directory.exists():
        return StopReport()
    with _locked(directory):
        recorded = _services_from_state(read_state(directory))
        if only is not None:
            report = _stop_services(directory, {n: s for n, s in recorded.items() if n in only}, grace, drop_state=False)
            rest = {n: s for n, s in recorded.items() if n not in only}
            if set(rest) >= set(SERVICES):
                env = stack_env(directory, rest)
                _write_state(directory, rest, env)
                _write_env_file(directory, env)
            return report
        report = _stop_services(directory, recorded, grace)
        pidfile = _paths(directory)["mongo_pidfile"]
        if pidfile.exists() and not report.skipped:
            pidfile.unlink(missing_ok=True)  # left behind when nx-27017 needed SIGKILL
        return report


def stack_status(directory: str | os.PathLike = DEFAULT_DIR) -> list[ServiceStatus]:
    directory = Path(directory).resolve()
    recorded = _services_from_state(read_state(directory))
    out = []
    for name in ALL_SERVICES:
        s = recorded.get(name)
        if s is None and name == SPARK:
            out.append(ServiceStatus(name, None, None, "off"))
        elif s is None:
            out.append(ServiceStatus(name, None, None, "not recorded"))
        elif not processes.alive(s.pid):
            out.append(ServiceStatus(name, s.pid, s.url, "gone", s.log))
        elif not _is_ours(s):
            out.append(ServiceStatus(name, s.pid, s.url, "pid reused", s.log))
        else:
            state = "answering" if answering(name, s.url) else "not answering"
            out.append(ServiceStatus(name, s.pid, s.url, state, s.log))
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidearm-local",
        description="Embedded stack for sidearm: moto S3 + nx-27017 (MongoDB wire) + SQLite, on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help='start (or reuse) the stack; use as: eval "$(sidearm-local up)"')
    down = sub.add_parser("down", help="stop the servers this DIR's `up` started")
    status = sub.add_parser("status", help="what runs where")
    for p in (up, down, status):
        p.add_argument("--dir", default=DEFAULT_DIR, help=f"stack folder (default {DEFAULT_DIR} in the cwd)")
    up.add_argument("--s3-port", type=int, default=None, help="exact S3 port (default 9000, or a free one)")
    up.add_argument("--mongo-port", type=int, default=None, help="exact Mongo port (default 27017, or a free one)")
    up.add_argument("--timeout", type=float, default=READY_TIMEOUT, help="seconds to wait for S3 and Mongo")
    up.add_argument(
        "--no-spark", dest="spark", action="store_false",
        help="leave out the Spark Connect server (about 1 GB of memory); the final tables then start "
        "Spark inside each run",
    )
    up.add_argument("--spark-port", type=int, default=None, help="exact Spark Connect port (default 15002, or a free one)")
    up.add_argument("--spark-timeout", type=float, default=SPARK_READY_TIMEOUT, help="seconds to wait for Spark")
    down.add_argument("--grace", type=float, default=STOP_GRACE, help="seconds between SIGTERM and SIGKILL")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            info = start_stack(
                args.dir, args.s3_port, args.mongo_port, args.timeout,
                spark=args.spark, spark_port=args.spark_port, spark_timeout=args.spark_timeout,
            )
            sys.stdout.write(export_lines(info.env))
            sys.stdout.flush()
            _say(f"settings written to {_paths(info.directory)['env']}; stop with: sidearm-local down --dir {args.dir}")
            return 0
        if args.command == "down":
            report = stop_stack(args.dir, args.grace)
            for line in report.stopped:
                _say(f"stopped {line}")
            for line in report.skipped:
                _say(line)
            if not report.stopped and not report.skipped:
                _say(f"nothing recorded in {Path(args.dir).resolve()}; nothing to stop")
            return 0
        statuses = stack_status(args.dir)
        print(f"{'service':8} {'pid':>7}  {'url':28} state")
        for s in statuses:
            print(f"{s.name:8} {s.pid if s.pid else '-':>7}  {s.url or '-':28} {s.state}")
        return 0 if all(s.ok for s in statuses) else 1
    except StackError as exc:
        _say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
