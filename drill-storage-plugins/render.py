#!/usr/bin/env python3
"""Render the Drill storage plugins beside this file and load them into Drill (docs/drill.md).

The templates (`minio.json`, `mongo.json`, `mssql.json`) hold `${VAR}` placeholders instead of
endpoints and credentials. This script fills them from the environment, optionally read from
an env file such as the stack's `.env`, and either prints the result or loads each plugin
through Drill's REST API (`POST /storage/<name>.json`). It fails, listing every variable that
is unset or empty, before anything is printed or sent.

    python drill-storage-plugins/render.py --env-file .env                 # print them
    python drill-storage-plugins/render.py --env-file .env --drill-url http://localhost:8047

Standard library only: it runs in any Python 3.9+ container (the stack's `drill-plugins` job)
or on the host.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# In env files `$$` stands for a literal `$`, as in Docker Compose.
ENV_FILE_TOKEN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariables(Exception):
    """Placeholders with no value; `missing` maps each variable to the templates that use it."""

    def __init__(self, missing: dict[str, list[str]]):
        self.missing = missing
        listed = ", ".join(f"{var} (in {', '.join(names)})" for var, names in sorted(missing.items()))
        super().__init__(f"missing environment variables: {listed}")


class DrillError(Exception):
    pass


def load_templates(directory: Path = HERE, names: list[str] | None = None) -> dict[str, object]:
    """`{plugin name: template}` for every `<name>.json` in `directory` (or just `names`)."""
    paths = sorted(directory.glob("*.json"))
    if names:
        unknown = sorted(set(names) - {p.stem for p in paths})
        if unknown:
            raise SystemExit(f"no template for plugin(s): {', '.join(unknown)} in {directory}")
        paths = [p for p in paths if p.stem in names]
    if not paths:
        raise SystemExit(f"no *.json templates in {directory}")
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in paths}


def placeholders(value: object) -> set[str]:
    """Every `${VAR}` name inside the strings of a JSON value."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(placeholders(k) | placeholders(v) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value))
    return set()


def _substitute(value: object, env: dict[str, str]) -> object:
    # Substituting inside the parsed JSON (not the text) keeps any character of a password,
    # quotes and backslashes included, correctly escaped in the output.
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: env[m.group(1)], value)
    if isinstance(value, dict):
        return {_substitute(k, env): _substitute(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env) for v in value]
    return value


def render(templates: dict[str, object], env: dict[str, str]) -> dict[str, object]:
    """The templates with every placeholder filled; MissingVariables when any is unset or empty."""
    missing: dict[str, list[str]] = {}
    for name, template in templates.items():
        for var in placeholders(template):
            if not env.get(var):
                missing.setdefault(var, []).append(name)
    if missing:
        raise MissingVariables(missing)
    return {name: _substitute(template, env) for name, template in templates.items()}


def read_env_file(path: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables of a Compose-style env file, with the process environment taking precedence.

    Understands what `.env.example` uses: `KEY=value` lines, `#` comments, optional `export `,
    quoted values ('single' taken literally), and `${VAR}` references to variables set earlier
    in the file or in the environment, which Docker Compose expands the same way.
    """
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, str] = {}
    for line_no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise SystemExit(f"{path}:{line_no}: not a KEY=value line: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            values[key] = value[1:-1]
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        lookup = {**values, **environ}
        values[key] = ENV_FILE_TOKEN.sub(
            lambda m: "$" if m.group(0) == "$$" else lookup.get(m.group(1), ""), value
        )
    return {**values, **environ}


def post_plugin(drill_url: str, name: str, config: object, timeout: float = 30.0) -> str:
    """Create or replace storage plugin `name` through Drill's REST API; Drill's answer."""
    url = f"{drill_url.rstrip('/')}/storage/{name}.json"
    body = json.dumps({"name": name, "config": config}).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")
        raise DrillError(f"{url}: HTTP {exc.code}: {detail.strip()}") from None
    try:
        result = str(json.loads(text).get("result", ""))
    except (ValueError, AttributeError):
        result = text
    if "success" not in result.lower():
        raise DrillError(f"{url}: Drill did not accept plugin {name!r}: {text.strip()}")
    return result


def _post_with_wait(drill_url: str, name: str, config: object, wait: float) -> str:
    deadline = time.monotonic() + wait
    while True:
        try:
            return post_plugin(drill_url, name, config)
        except urllib.error.URLError as exc:  # Drill not listening yet
            if time.monotonic() >= deadline:
                raise DrillError(f"{drill_url}: {exc.reason}") from None
            time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plugins", nargs="*", help="plugin names (default: every template)")
    parser.add_argument("--dir", type=Path, default=HERE, help="folder of the *.json templates")
    parser.add_argument(
        "--env-file", type=Path, action="append", default=[],
        help="read variables from this file too (the environment still wins); may repeat",
    )
    parser.add_argument("--drill-url", help="load the plugins into this Drill, e.g. http://localhost:8047")
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="keep retrying for this long while Drill does not answer yet",
    )
    args = parser.parse_args(argv)

    env = dict(os.environ)
    for path in args.env_file:
        env = read_env_file(path, env)
    try:
        rendered = render(load_templates(args.dir, args.plugins), env)
    except MissingVariables as exc:
        print(f"render.py: {exc}", file=sys.stderr)
        return 2

    if not args.drill_url:
        json.dump(rendered, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    failed = 0
    for name, config in rendered.items():
        try:
            result = _post_with_wait(args.drill_url, name, config, args.wait)
            print(f"storage plugin {name}: {result}")
        except DrillError as exc:
            print(f"storage plugin {name}: FAILED: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
