"""The embedded stack (SPEC 1, right column) on one machine, no Docker: start, reuse, restart,
stop and report the servers of one stack folder. `sidearm-local` (stack_cli.py) is its command line.

`start_stack` starts servers on 127.0.0.1 as detached children whose pids it records (the server
kinds are in servers.py: moto's S3 with the bucket `gamestreams`, nx-27017 with the
`sidearm.boxscores` collection, and, when asked, the pyspark wheel's Spark Connect server, warmed
with the final-tables job right after it listens so the first real run finds a hot JVM). It
creates the SQLite `sidearmdb` with the base data, waits until the servers answer, and writes
`DIR/stack.json` (stack_state.py) and `DIR/sidearm.env`. `stop_stack` stops exactly the recorded
pids, after checking each still is the process we started (a pid can be reused).

Tests and benchmarks use these functions directly; quirks of the servers are written down in
docs/embedded-stack.md.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sidearm_assets import settings
from sidearm_assets.local import processes
from sidearm_assets.local.launch import DEFAULT_PORTS, STOP_GRACE, Launch, say, start_servers, stop_pid, tail
from sidearm_assets.local.servers import KINDS, SPARK as SPARK_KIND, STORES, free_port, kind, listening, port_free
from sidearm_assets.local.spark_warmup import warm_spark
from sidearm_assets.local.stack_state import (
    HOST, STATE_FILE, Service, StackError, env_path, locked, read_state, services_from_state,
    sqlite_path, state_path, write_env_file, write_state,
)

__all__ = [
    "ALL_SERVICES", "DEFAULT_DIR", "DEFAULT_PORTS", "FREE_PORTS", "HOST", "SERVICES", "SPARK",
    "STATE_FILE", "Service", "ServiceStatus", "StackError", "StackInfo", "StopReport", "answering",
    "free_port", "listening", "port_free", "read_state", "restart_service", "stack_env",
    "stack_status", "start_stack", "stop_stack", "warm_spark",
]

DEFAULT_DIR = ".sidearm"
FREE_PORTS = {name: 0 for name in KINDS}  # any free port for every server (tests, benchmarks)
READY_TIMEOUT = 60.0  # seconds; moto needs a few on a busy two-core machine
SPARK_READY_TIMEOUT = 180.0  # the Connect server listens after 10-20 s on two idle cores
SERVICES = STORES  # the stores; always started together
SPARK = SPARK_KIND.name  # the optional Spark Connect server (stateless: restarted on its own)
ALL_SERVICES = tuple(KINDS)


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


def answering(name: str, url: str, timeout: float = 1.0) -> bool:
    """Whether the server at `url` answers as the service `name` should be."""
    return kind(name).answering(url, timeout)


def _is_ours(service: Service) -> bool:
    """The recorded pid still runs the very process we started: same start time and command line."""
    return processes.is_same(service.pid, processes.Identity(service.proc_start, service.cmdline))


def stack_env(directory: Path, services: dict[str, Service]) -> dict[str, str]:
    """Every setting in `settings.ALL_SETTINGS`, pointing at this stack, plus `DAGSTER_HOME`
    (a local instance in DIR/dagster_home tuned for live latency, see local_instance.py).

    The stack owns the values below; the rest (bucket, database name, Spark master, DELAY) follow
    the caller's environment. Credentials are the embedded defaults on purpose: a production
    secret exported in the same shell must never be written into DIR/sidearm.env. The Spark URL is
    the stack's too: its server's, or empty without one (a stale URL is never re-exported)."""
    from sidearm_assets.local.local_instance import write_local_instance

    own = {
        settings.S3_ENDPOINT_URL.name: services["s3"].url,
        settings.S3_ACCESS_KEY.name: settings.S3_ACCESS_KEY.default,
        settings.S3_SECRET_KEY.name: settings.S3_SECRET_KEY.default,
        settings.MONGO_URI.name: services["mongo"].url,
        settings.SQL_URL.name: f"sqlite:///{sqlite_path(directory)}",  # absolute: 4 slashes
        settings.SPARK_REMOTE.name: services[SPARK].url if SPARK in services else "",
    }
    env = {s.name: own[s.name] if s.name in own else s.value() for s in settings.ALL_SETTINGS}
    env["DAGSTER_HOME"] = str(write_local_instance(directory / "dagster_home"))
    return env


def _prepare_data(directory: Path, env: dict[str, str], reset: bool) -> None:
    """The bucket and the SQLite sidearmdb; base tables are reset only on a fresh start."""
    from sidearm_assets.storage import clients, reference_db

    s3 = clients.s3_client(
        env[settings.S3_ENDPOINT_URL.name], env[settings.S3_ACCESS_KEY.name], env[settings.S3_SECRET_KEY.name]
    )
    if clients.ensure_bucket(s3, env[settings.S3_BUCKET.name]):
        say(f"created bucket {env[settings.S3_BUCKET.name]}")
    path = sqlite_path(directory)
    if reset or not path.exists():
        engine = reference_db.make_engine(env[settings.SQL_URL.name])
        try:
            summary = reference_db.reset_base_tables(engine)
        finally:
            engine.dispose()
        say(f"sidearmdb {path}: {summary.teams} teams, {summary.players} players (base data)")


def _warm_or_stop(spark: Service) -> None:
    """Warm the new Spark server; when that fails (or is interrupted) stop it and say why."""
    try:
        seconds = warm_spark(spark.url)
    except BaseException as exc:
        with contextlib.suppress(StackError):
            stop_pid(spark.pid, STOP_GRACE)
        if isinstance(exc, Exception) and not isinstance(exc, StackError):
            raise StackError(
                f"the Spark Connect server's warm-up job failed, server stopped: {exc}; log {spark.log}"
            ) from exc
        raise
    say(f"spark warm: the final-tables job took {', '.join(f'{s:.1f}' for s in seconds)} s")


def _timeouts(timeouts: Mapping[str, float] | None, spark: bool) -> dict[str, float]:
    """Seconds to wait for each server to be started (Spark only when asked for)."""
    given = dict(timeouts or {})
    out = {name: given.get(name, READY_TIMEOUT) for name in SERVICES}
    if spark:
        out[SPARK] = given.get(SPARK, SPARK_READY_TIMEOUT)
    return out


def start_stack(
    directory: str | os.PathLike = DEFAULT_DIR,
    ports: Mapping[str, int | None] | None = None,
    *,
    spark: bool = False,
    timeouts: Mapping[str, float] | None = None,
) -> StackInfo:
    """Start the stack in `directory`, or reuse it when its recorded servers still answer.

    `ports` per server (`s3`, `mongo`, `spark`): missing or None = the previous run's port, else
    the default, else a free one; 0 = any free port (`FREE_PORTS`); a number = exactly that port
    (an error when taken). `spark`: also run the Spark Connect server (warmed before this
    returns); a running one is stopped when not asked for. The Spark server is stateless, so it is
    started or stopped on its own while the stores are reused. `timeouts`: seconds to wait for
    each server (READY_TIMEOUT for the stores, SPARK_READY_TIMEOUT for Spark by default).
    """
    directory = Path(directory).resolve()
    ports = dict(ports or {})
    waits = _timeouts(timeouts, spark)
    with locked(directory):
        recorded = services_from_state(read_state(directory))
        stores = {name: s for name, s in recorded.items() if name in SERVICES}
        if set(stores) == set(SERVICES) and all(_is_ours(s) and answering(s.name, s.url) for s in stores.values()):
            return _reuse(directory, recorded, stores, ports, spark, waits)
        if recorded:
            _stop_services(directory, recorded, STOP_GRACE)  # a half-dead stack starts over
        services = start_servers(directory, ports, recorded, waits)  # all at once: Spark is slowest
        env = stack_env(directory, services)
        write_state(directory, services, env)  # recorded first, so `down` can stop them whatever follows
        _prepare_data(directory, env, reset=True)
        if spark:
            try:
                _warm_or_stop(services[SPARK])
            except BaseException:
                del services[SPARK]
                write_state(directory, services, stack_env(directory, services))
                raise
        write_env_file(directory, env)
        for s in services.values():
            say(f"{s.name} answers at {s.url} (pid {s.pid}, log {s.log})")
        return StackInfo(directory, services, env, reused=False)


def _reuse(
    directory: Path, recorded: dict[str, Service], stores: dict[str, Service], ports: dict[str, int | None],
    spark: bool, waits: dict[str, float],
) -> StackInfo:
    """Keep the running stores; start, keep or stop the Spark server as asked."""
    services = dict(stores)
    old_spark = recorded.get(SPARK)
    spark_ok = old_spark is not None and _is_ours(old_spark) and answering(SPARK, old_spark.url)
    if old_spark is not None and not (spark and spark_ok):
        for line in _stop_services(directory, {SPARK: old_spark}, STOP_GRACE, drop_state=False).stopped:
            say(f"stopped {line}")
    if spark and spark_ok:
        services[SPARK] = old_spark
    elif spark:
        new = start_servers(directory, ports, recorded, {SPARK: waits[SPARK]})[SPARK]
        _warm_or_stop(new)
        services[SPARK] = new
        say(f"spark answers at {new.url} (pid {new.pid}, log {new.log})")
    env = stack_env(directory, services)
    _prepare_data(directory, env, reset=False)
    write_state(directory, services, env)
    write_env_file(directory, env)
    say(f"reusing the running stack in {directory}")
    return StackInfo(directory, services, env, reused=True)


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
            how = stop_pid(service.pid, grace)
            report.stopped.append(f"{name} (pid {service.pid}, {how})")
    if drop_state:
        state_path(directory).unlink(missing_ok=True)
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
    with locked(directory):
        state = read_state(directory)
        services = services_from_state(state)
        if state is None or name not in services:
            raise StackError(f"{name} is not recorded in {directory}")
        old = services[name]
        if _is_ours(old):
            stop_pid(old.pid, grace)
        time.sleep(down_seconds)  # the outage itself
        launch = Launch(kind(name), directory, old.port)
        launch.start()
        try:
            processes.wait_until(lambda: launch.kind.ready(old.port), timeout=timeout, what=f"{name} answering again")
        except TimeoutError as exc:
            stop_pid(launch.proc.pid, grace)
            raise StackError(f"{exc}; log {launch.log}:\n{tail(launch.log)}") from None
        services[name] = launch.record()
        write_state(directory, services, state["env"])
        return services[name]


def stop_stack(
    directory: str | os.PathLike = DEFAULT_DIR, grace: float = STOP_GRACE, only: tuple[str, ...] | None = None
) -> StopReport:
    """Stop exactly the recorded servers that are still ours; harmless when nothing runs.
    `only` (e.g. `("spark",)`) stops those and keeps the rest of the stack recorded."""
    directory = Path(directory).resolve()
    if not directory.exists():
        return StopReport()
    with locked(directory):
        recorded = services_from_state(read_state(directory))
        if only is not None:
            report = _stop_services(directory, {n: s for n, s in recorded.items() if n in only}, grace, drop_state=False)
            rest = {n: s for n, s in recorded.items() if n not in only}
            if set(rest) >= set(SERVICES):
                env = stack_env(directory, rest)
                write_state(directory, rest, env)
                write_env_file(directory, env)
            return report
        report = _stop_services(directory, recorded, grace)
        pidfile = KINDS["mongo"].pidfile(directory)
        if pidfile.exists() and not report.skipped:
            pidfile.unlink(missing_ok=True)  # left behind when nx-27017 needed SIGKILL
        return report


def stack_status(directory: str | os.PathLike = DEFAULT_DIR) -> list[ServiceStatus]:
    directory = Path(directory).resolve()
    recorded = services_from_state(read_state(directory))
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


def env_file(directory: str | os.PathLike) -> Path:
    return env_path(Path(directory).resolve())
