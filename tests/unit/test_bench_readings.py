"""bench/readings.py's scale of the time windows under valgrind (``window_scale``): the
callgrind run batches as the native run at the same pace only with its windows stretched by
the slowdown, and a run that keeps the pace needs none."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "readings.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_readings", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_windows_stretch_by_the_slowdown() -> None:
    assert bench().window_scale(32_000.0, 64.0) == pytest.approx(500.0)


def test_a_run_that_keeps_the_pace_is_not_scaled() -> None:
    # A paced run that valgrind keeps up with (or outpaces, by timing noise) batches as the
    # native one: its windows stay the product's, never shrink.
    assert bench().window_scale(100.0, 100.0) == 1.0
    assert bench().window_scale(100.0, 101.0) == 1.0


def test_a_run_that_fed_nothing_measures_no_slowdown() -> None:
    with pytest.raises(ValueError, match="no slowdown"):
        bench().window_scale(32_000.0, 0.0)
