"""What the gateway does to its memory once started: start-up objects frozen out of GC."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ketch_gateway.cli import _freeze_startup_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def _in_oldest_generation(value: object) -> bool:
    return any(item is value for item in gc.get_objects(generation=2))


@pytest.mark.usefixtures("unfrozen")
def test_start_up_objects_are_frozen_out_of_later_collections() -> None:
    survivor: list[list[int]] = [[index] for index in range(1000)]
    gc.collect()
    assert _in_oldest_generation(survivor)  # a full collection would walk it again
    _freeze_startup_objects()
    assert gc.get_freeze_count() >= len(survivor)
    assert not _in_oldest_generation(survivor)  # frozen: no collection walks it any more
