"""The reserve an app keeps before its objective, learned from how long answering took."""

from __future__ import annotations

import pytest

from ketch_gateway.correction.answer_reserve import REFRESH_EVERY, WINDOW, AnswerReserve


def test_the_reserve_starts_at_its_floor() -> None:
    assert AnswerReserve(0.050).seconds == pytest.approx(0.002)
    assert AnswerReserve(0.005).seconds == pytest.approx(0.001)


def test_the_reserve_learns_the_tail_of_the_overruns_plus_a_clock_tick() -> None:
    reserve = AnswerReserve(0.050)
    for index in range(REFRESH_EVERY * 8):
        reserve.record(0.004 if index % 50 == 0 else 0.0015)
    assert reserve.seconds == pytest.approx(0.005, abs=1e-4)


def test_the_reserve_stays_between_its_floor_and_a_fifth_of_the_objective() -> None:
    reserve = AnswerReserve(0.050)
    for _ in range(REFRESH_EVERY):
        reserve.record(0.5)
    assert reserve.seconds == pytest.approx(0.010)
    for _ in range(WINDOW):
        reserve.record(-0.001)
    assert reserve.seconds == pytest.approx(0.002)


def test_the_reserve_changes_only_every_few_answers() -> None:
    reserve = AnswerReserve(0.050)
    for _ in range(REFRESH_EVERY - 1):
        reserve.record(0.008)
    assert reserve.seconds == pytest.approx(0.002)
    reserve.record(0.008)
    assert reserve.seconds == pytest.approx(0.009)
