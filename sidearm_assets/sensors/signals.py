"""The completion signal, for the game-over sensor: `sidearm_assets.publishing.signals` is the module."""

from sidearm_assets.publishing.signals import (  # noqa: F401
    DEFAULT_WAIT_SECONDS,
    clear,
    notify_completion,
    wait_for_completion,
)
