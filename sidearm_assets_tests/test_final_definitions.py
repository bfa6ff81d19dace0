"""The final tables in the Definitions, and loading the code location starts no JVM."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from dagster import DefaultSensorStatus

from sidearm_assets import defs
from sidearm_assets.assets.final import final_tables_checks

PROBE = textwrap.dedent(
    """
    import json, os
    from sidearm_assets import defs
    from sidearm_assets.local import processes
    defs.resolve_all_job_defs()
    keys = sorted(k.to_user_string() for k in defs.resolve_all_asset_keys())
    from pyspark import SparkContext
    children = [(processes.command_line(pid) or [""])[0] for pid in processes.children_of(os.getpid())]
    print(json.dumps({
        "keys": keys,
        "spark_context": SparkContext._active_spark_context is not None,
        "gateway": SparkContext._gateway is not None,
        "children": children,
    }))
    """
)


def test_loading_the_code_location_starts_no_jvm():
    """dagster-pyspark's resource class is imported (pyspark's Python package comes with it), but
    no SparkContext, no py4j gateway, no java child process exists after loading everything."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"players2", "teams2"} <= set(probe["keys"])
    assert probe["spark_context"] is False
    assert probe["gateway"] is False
    assert not [c for c in probe["children"] if "java" in c], probe["children"]


def test_final_assets_sensor_and_resource_are_registered():
    """Through the public `resolve_*` API of the Definitions."""
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    for key in ("players2", "teams2"):
        assert specs[key].group_name == "final"
        assert set(specs[key].kinds) == {"spark", "sql"}
    players2_deps = {d.asset_key.to_user_string() for d in specs["players2"].deps}
    teams2_deps = {d.asset_key.to_user_string() for d in specs["teams2"].deps}
    assert players2_deps == {"reference_players", "raw_gamestream"}
    assert teams2_deps == {"reference_teams", "raw_gamestream"}
    on_asset = {c.name for c in defs.resolve_assets_def("players2").check_specs}
    assert {"facts_match_games", "jerseys_on_roster"} <= on_asset  # the run's own games
    graph = defs.get_repository_def().asset_graph
    checks = {k.name for k in graph.asset_check_keys if k.asset_key.to_user_string() in ("players2", "teams2")}
    assert {"records_match_completed_games", "player_totals_match_completed_games", "goals_added_equal_final_scores",
            "counted_games_recorded", "completed_games_counted"} <= checks - on_asset  # the whole tables: own step
    assert final_tables_checks.op.tags["dagster/priority"] == "-1"  # after the season lake and analytics
    sensor = defs.resolve_sensor_def("game_over_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 2
    assert "pyspark" in defs.resources
    spark_config = defs.resources["pyspark"].spark_config
    assert spark_config["spark.driver.bindAddress"] == "127.0.0.1"
    assert spark_config["spark.ui.enabled"] == "false"
