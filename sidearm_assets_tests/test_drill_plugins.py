"""drill-storage-plugins/: templates without credentials, rendered from the environment.

Drill itself needs Docker, so loading is checked against a small HTTP server on loopback that
records what Drill's REST API would receive (`POST /storage/<name>.json`).
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sidearm_assets.domain.stream import parse_line

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "drill-storage-plugins"
RENDER = PLUGIN_DIR / "render.py"


def load_render():
    spec = importlib.util.spec_from_file_location("drill_render", RENDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_render()

ENV = {
    "SIDEARM_S3_ENDPOINT_URL": "http://minio:9000",
    "SIDEARM_S3_ACCESS_KEY": "stats-reader",
    "SIDEARM_S3_SECRET_KEY": 's3-"quoted"\\secret',
    "SIDEARM_S3_BUCKET": "gamestreams",
    "SIDEARM_MONGO_URI": "mongodb://u:mongo-pw@mongodb:27017/?authSource=admin",
    "MSSQL_USER": "sa",
    "MSSQL_SA_PASSWORD": "Sql-pw-42",
}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RENDER), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_templates_are_json_and_hold_no_credentials():
    templates = render.load_templates(PLUGIN_DIR)
    assert set(templates) == {"lake", "minio", "mongo", "mssql"}
    for name in templates:
        text = (PLUGIN_DIR / f"{name}.json").read_text()
        for value in ENV.values():
            assert value not in text
    assert templates["minio"]["config"]["fs.s3a.secret.key"] == "${SIDEARM_S3_SECRET_KEY}"
    assert templates["mssql"]["password"] == "${MSSQL_SA_PASSWORD}"
    assert templates["mongo"]["connection"] == "${SIDEARM_MONGO_URI}"


def test_render_substitutes_every_credential():
    rendered = render.render(render.load_templates(PLUGIN_DIR), ENV)
    text = json.dumps(rendered)
    assert "${" not in text

    minio = rendered["minio"]
    assert minio["type"] == "file"
    assert minio["connection"] == "s3a://gamestreams"
    assert minio["config"] == {
        "fs.s3a.endpoint": "http://minio:9000",
        "fs.s3a.access.key": "stats-reader",
        "fs.s3a.secret.key": 's3-"quoted"\\secret',
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
    }
    assert rendered["mongo"] == {
        "type": "mongo",
        "connection": "mongodb://u:mongo-pw@mongodb:27017/?authSource=admin",
        "enabled": True,
    }
    mssql = rendered["mssql"]
    assert mssql["type"] == "jdbc"
    assert mssql["driver"] == "com.microsoft.sqlserver.jdbc.SQLServerDriver"
    assert mssql["url"] == "jdbc:sqlserver://mssql:1433;databaseName=sidearmdb;encrypt=false"
    assert (mssql["username"], mssql["password"]) == ("sa", "Sql-pw-42")


def test_minio_format_reads_the_stream_as_space_delimited_text():
    minio = render.render(render.load_templates(PLUGIN_DIR, ["minio"]), ENV)["minio"]
    [(name, fmt)] = [(n, f) for n, f in minio["formats"].items() if "txt" in f["extensions"]]
    assert fmt["type"] == "text" and fmt["fieldDelimiter"] == " "
    assert not fmt.get("extractHeader")
    assert minio["workspaces"]["root"]["defaultInputFormat"] == name
    # Drill's columns[0..4] are then exactly the parser's five fields.
    line = "12 47:31 205 22 1"  # SPEC 1: event id, clock, team id, jersey, goal
    columns = line.split(fmt["fieldDelimiter"])
    event = parse_line(1, line)
    assert columns == [str(event.event_id), event.clock, str(event.team_id), event.jersey, str(event.goal)]


def test_missing_variables_are_all_listed():
    env = {k: v for k, v in ENV.items() if k not in ("SIDEARM_S3_SECRET_KEY", "MSSQL_SA_PASSWORD")}
    env["SIDEARM_MONGO_URI"] = ""  # empty counts as missing
    with pytest.raises(render.MissingVariables) as caught:
        render.render(render.load_templates(PLUGIN_DIR), env)
    assert caught.value.missing == {
        "SIDEARM_S3_SECRET_KEY": ["lake", "minio"],
        "MSSQL_SA_PASSWORD": ["mssql"],
        "SIDEARM_MONGO_URI": ["mongo"],
    }


def test_cli_prints_rendered_plugins():
    result = run_cli(env=ENV)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["mssql"]["password"] == "Sql-pw-42"
    assert printed["minio"]["config"]["fs.s3a.secret.key"] == 's3-"quoted"\\secret'


def test_cli_fails_listing_missing_variables_and_prints_nothing():
    result = run_cli(env={"SIDEARM_S3_BUCKET": "gamestreams"})
    assert result.returncode == 2
    assert result.stdout == ""
    for var in ("SIDEARM_S3_ENDPOINT_URL", "SIDEARM_S3_ACCESS_KEY", "SIDEARM_S3_SECRET_KEY",
                "SIDEARM_MONGO_URI", "MSSQL_USER", "MSSQL_SA_PASSWORD"):
        assert var in result.stderr
    assert "SIDEARM_S3_BUCKET" not in result.stderr


def test_cli_reads_the_env_file_of_the_stack():
    result = run_cli("--env-file", str(ROOT / ".env.example"), "mssql", "minio", env={})
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"mssql", "minio"}
    assert printed["mssql"]["password"] == "Change-me-1"
    assert printed["minio"]["config"]["fs.s3a.access.key"] == "sidearm"
    # The environment wins over the file, as in Docker Compose.
    result = run_cli("--env-file", str(ROOT / ".env.example"), "mssql", env={"MSSQL_SA_PASSWORD": "From-env-9"})
    assert json.loads(result.stdout)["mssql"]["password"] == "From-env-9"


def test_env_file_syntax(tmp_path):
    path = tmp_path / "stack.env"
    path.write_text(
        "# comment\n"
        "export USER_NAME=ann\n"
        "PASS='lit${USER_NAME}'\n"
        'URL="db://${USER_NAME}:${PASS}@host"\n'
        "PRICE=$$5 # inline comment\n"
        "EMPTY=\n"
    )
    env = render.read_env_file(path, environ={})
    assert env == {
        "USER_NAME": "ann",
        "PASS": "lit${USER_NAME}",
        "URL": "db://ann:lit${USER_NAME}@host",
        "PRICE": "$5",
        "EMPTY": "",
    }


class _FakeDrill(http.server.BaseHTTPRequestHandler):
    """Answers like Drill's storage endpoint and records every request."""

    requests: list[tuple[str, str, dict]] = []
    reply: tuple[int, str] = (200, '{"result": "Success"}')

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((self.path, self.headers["Content-Type"], json.loads(body)))
        status, text = type(self).reply
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def drill_server():
    class Handler(_FakeDrill):
        requests: list = []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_cli_loads_each_plugin_through_the_rest_api(drill_server):
    url, handler = drill_server
    result = run_cli("--drill-url", url + "/", env=ENV)
    assert result.returncode == 0, result.stderr
    assert "Sql-pw-42" not in result.stdout + result.stderr
    paths = [path for path, _, _ in handler.requests]
    assert paths == ["/storage/lake.json", "/storage/minio.json", "/storage/mongo.json", "/storage/mssql.json"]
    for path, content_type, body in handler.requests:
        name = path.removeprefix("/storage/").removesuffix(".json")
        assert content_type == "application/json"
        assert body["name"] == name
        assert "${" not in json.dumps(body)
    bodies = {b["name"]: b["config"] for _, _, b in handler.requests}
    assert bodies["mssql"]["password"] == "Sql-pw-42"
    assert bodies["minio"]["config"]["fs.s3a.secret.key"] == 's3-"quoted"\\secret'


def test_cli_reports_a_plugin_drill_rejects(drill_server):
    url, handler = drill_server
    handler.reply = (400, '{"result": "Invalid JSON mapping"}')
    result = run_cli("--drill-url", url, "mongo", env=ENV)
    assert result.returncode == 1
    assert "storage plugin mongo: FAILED" in result.stderr
    assert "Invalid JSON mapping" in result.stderr
    assert [p for p, _, _ in handler.requests] == ["/storage/mongo.json"]


def test_cli_fails_when_drill_is_not_listening():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    result = run_cli("--drill-url", f"http://127.0.0.1:{port}", "mongo", env=ENV)
    assert result.returncode == 1
    assert "storage plugin mongo: FAILED" in result.stderr


def test_lake_plugin_reads_the_lake_folder_as_parquet_with_the_bucket_credentials():
    from sidearm_assets.lake.store import EVENTS_PREFIX

    rendered = render.render(render.load_templates(PLUGIN_DIR, ["lake", "minio"]), ENV)
    lake, minio = rendered["lake"], rendered["minio"]
    assert lake["type"] == "file" and lake["enabled"] is True
    assert lake["connection"] == minio["connection"] == "s3a://gamestreams"
    assert lake["config"] == minio["config"]  # the same endpoint and credentials as the streams
    workspace = lake["workspaces"]["root"]
    assert workspace["writable"] is False
    assert workspace["defaultInputFormat"] == "parquet" and lake["formats"]["parquet"]["type"] == "parquet"
    # docs/drill.md queries `lake.root.events`: the workspace's folder plus `events` is the
    # prefix the pipeline writes the game files under.
    assert f"{workspace['location'].strip('/')}/events" == EVENTS_PREFIX
    text = (ROOT / "docs" / "drill.md").read_text()
    assert "lake.root.events" in text
