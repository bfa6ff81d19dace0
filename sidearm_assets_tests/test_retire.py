"""Retiring ended games from the bucket's top level (storage/retire.py, `sidearm-games retire`)."""

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sidearm_assets import settings
from sidearm_assets.resources import GameStreamStore
from sidearm_assets.storage.clients import ObjectVersion
from sidearm_assets.storage.retire import RetireError, plan_retirement, restore_game, retire_ended_games

NOW = datetime(2026, 4, 11, 18, 0, tzinfo=timezone.utc)


def version(etag: str, hours_ago: float) -> ObjectVersion:
    return ObjectVersion("k", etag, NOW - timedelta(hours=hours_ago), 10)


@pytest.mark.unit
def test_only_games_unchanged_since_their_archived_completion_and_old_enough_go():
    live = {"over": version("a", 7), "corrected": version("new", 7), "live": version("c", 0.1),
            "just-over": version("d", 1)}
    archived = {"over": version("a", 7), "corrected": version("old", 8), "just-over": version("d", 1),
                "gone-already": version("e", 30)}
    plan = plan_retirement(live, archived, NOW, timedelta(hours=6))
    assert plan.retire == ["over"]
    assert set(plan.keep) == {"corrected", "live", "just-over"}
    assert "changed since it ended" in plan.keep["corrected"]
    assert "not in the archive" in plan.keep["live"]
    assert plan.keep["just-over"] == "unchanged for 1.0 h only (retired after 6.0 h)"
    assert plan_retirement(live, archived, NOW, timedelta(0)).retire == ["just-over", "over"]
    with pytest.raises(ValueError, match="negative"):
        plan_retirement(live, archived, NOW, timedelta(hours=-1))


@pytest.fixture
def store(embedded_stack):
    bucket = f"retire-{uuid.uuid4().hex[:10]}"
    s = GameStreamStore(endpoint_url=embedded_stack["SIDEARM_S3_ENDPOINT_URL"],
                        access_key=embedded_stack["SIDEARM_S3_ACCESS_KEY"],
                        secret_key=embedded_stack["SIDEARM_S3_SECRET_KEY"], bucket=bucket)
    s.ensure_bucket()
    return s


FINAL = b"0 59:51 101 6 1\n1 40:00 205 12 0\n-1 00:00 0 0 0\n"


def test_retire_removes_ended_games_and_restore_brings_one_back(store):
    store.write("ended", FINAL)
    store.archive("ended", FINAL)
    store.write("corrected", FINAL.replace(b"205 12 0", b"205 12 1"))
    store.archive("corrected", FINAL)
    store.write("live", FINAL[:16])
    later = datetime.now(timezone.utc) + timedelta(hours=7)

    dry = retire_ended_games(store, now=later, dry_run=True)
    assert dry.retired == ["ended"] and set(store.list_games()) == {"ended", "corrected", "live"}
    assert retire_ended_games(store, now=datetime.now(timezone.utc)).retired == []  # not 6 h yet
    report = retire_ended_games(store, now=later)
    assert report.retired == ["ended"] and set(report.keep) == {"corrected", "live"}
    assert set(store.list_games()) == {"corrected", "live"}  # the live poll no longer lists it
    assert store.read_archive("ended")[0] == FINAL  # nothing lost

    assert restore_game(store, "ended") == len(FINAL)
    assert store.read("ended")[0] == FINAL
    with pytest.raises(RetireError, match="already"):
        restore_game(store, "ended")
    with pytest.raises(RetireError, match="no archived completion"):
        restore_game(store, "never-archived")


def test_the_cli_retires_and_restores(store, embedded_stack):
    store.write("ended", FINAL)
    store.archive("ended", FINAL)
    env = {**os.environ, **embedded_stack, settings.S3_BUCKET.name: store.bucket}
    cli = [str(Path(sys.executable).with_name("sidearm-games"))]

    kept = subprocess.run(cli + ["retire"], env=env, capture_output=True, text=True, timeout=60)
    assert kept.returncode == 0 and "kept ended: unchanged for" in kept.stdout, kept.stdout + kept.stderr
    gone = subprocess.run(cli + ["retire", "--ended-for", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert gone.returncode == 0 and "retired ended" in gone.stdout, gone.stdout + gone.stderr
    assert "ended" not in store.list_games()
    back = subprocess.run(cli + ["restore", "ended"], env=env, capture_output=True, text=True, timeout=60)
    assert back.returncode == 0 and store.read("ended")[0] == FINAL, back.stdout + back.stderr
    again = subprocess.run(cli + ["restore", "ended"], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already" in again.stderr
