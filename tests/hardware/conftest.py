"""Tests on real radios: deselected unless BRIDGED_HARDWARE=1, since CI has none attached."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("BRIDGED_HARDWARE") == "1":
        return
    deselected = [item for item in items if item.get_closest_marker("hardware")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("hardware")]
