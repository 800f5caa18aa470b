import gc
from collections.abc import Iterator

import pytest

from servicekit.gctune import tune_gc


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    saved = gc.get_threshold()
    yield saved
    gc.set_threshold(*saved)


def test_tune_gc_raises_generation_0_only(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(gen0_threshold=50_000)
    assert gc.get_threshold() == (50_000, 10, 10)


def test_tune_gc_zero_keeps_cpython_thresholds(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(700, 10, 10)
    tune_gc(gen0_threshold=0)
    assert gc.get_threshold() == (700, 10, 10)
