"""The final tables in the Definitions, and loading the code location starts no JVM."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from dagster import AssetKey, DefaultSensorStatus

from sidearm_assets import defs

PROBE = textwrap.dedent(
    """
    import json, os
    from sidearm_assets import defs
    from sidearm_assets.local import processes
    repo = defs.get_repository_def()
    repo.get_all_jobs()
    keys = sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys())
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
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    for key in ("players2", "teams2"):
        node = graph.get(AssetKey(key))
        assert node.group_name == "final"
        assert set(node.kinds) == {"spark", "sql"}
    players2_deps = {k.to_user_string() for k in graph.get(AssetKey("players2")).parent_keys}
    teams2_deps = {k.to_user_string() for k in graph.get(AssetKey("teams2")).parent_keys}
    assert players2_deps == {"reference_players", "raw_gamestream"}
    assert teams2_deps == {"reference_teams", "raw_gamestream"}
    checks = {k.name for k in graph.asset_check_keys}
    assert {"records_match_completed_games", "player_totals_match_completed_games",
            "goals_added_equal_final_scores"} <= checks
    sensor = repo.get_sensor_def("game_over_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 2
    assert "pyspark" in repo.get_top_level_resources()
    spark_config = defs.resources["pyspark"].spark_config
    assert spark_config["spark.driver.bindAddress"] == "127.0.0.1"
    assert spark_config["spark.ui.enabled"] == "false"
