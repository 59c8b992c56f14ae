"""The rollouts' parts on their own: splits, the sequential test, settings, answers."""

from __future__ import annotations

import collections
import random

import pytest

from ketch_gateway.control.config_reader import ConfigError, Reader
from ketch_gateway.rollouts.answers import agree, decision, is_wrong
from ketch_gateway.rollouts.config import read_rollout, read_shadow, read_split
from ketch_gateway.rollouts.judgement import Arm, Verdict, judge, look_index, look_size
from ketch_gateway.serving.split import Split, place


def test_a_users_place_is_stable_and_keyed_by_the_model() -> None:
    assert place("digits", "alice") == place("digits", "alice")
    assert place("digits", "alice") != place("topics", "alice")
    assert 0 <= place("digits", "bob") < 1


def test_a_split_gives_each_version_its_share_of_users() -> None:
    split = Split("digits", {"1": 0.9, "2": 0.1})
    counts = collections.Counter(split.choose(f"user-{i}") for i in range(20_000))
    assert counts["2"] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert split.choose("user-7") == split.choose("user-7")


def test_a_growing_last_share_keeps_its_users() -> None:
    small = Split("digits", {"1": 0.95, "2": 0.05})
    large = Split("digits", {"1": 0.75, "2": 0.25})
    users = [f"user-{i}" for i in range(5000)]
    on_canary = {u for u in users if small.choose(u) == "2"}
    assert on_canary
    assert all(large.choose(u) == "2" for u in on_canary)


def test_a_version_with_no_share_gets_nothing() -> None:
    split = Split("digits", {"1": 1.0, "2": 0.0})
    assert {split.choose(f"u{i}") for i in range(1000)} == {"1"}
    assert {split.choose_at(random.random()) for _ in range(1000)} == {"1"}


def test_looks_come_at_doubling_counts() -> None:
    assert [look_index(200, n) for n in (0, 199, 200, 399, 400, 799, 800, 1600)] == [
        -1,
        -1,
        0,
        0,
        1,
        1,
        2,
        3,
    ]
    assert [look_size(200, k) for k in range(4)] == [200, 400, 800, 1600]


def test_a_clearly_better_canary_is_not_worse_at_the_first_look() -> None:
    verdict = judge(Arm(3800, 150), Arm(200, 3), margin=0.01, confidence=0.95, look=0)
    assert verdict.verdict is Verdict.NOT_WORSE


def test_a_clearly_worse_canary_is_worse_at_the_first_look() -> None:
    verdict = judge(Arm(3800, 150), Arm(200, 30), margin=0.01, confidence=0.95, look=0)
    assert verdict.verdict is Verdict.WORSE
    assert "look 0" in verdict.describe()


def test_an_equal_canary_needs_more_examples_than_the_first_look() -> None:
    verdict = judge(Arm(3800, 152), Arm(200, 8), margin=0.01, confidence=0.95, look=0)
    assert verdict.verdict is Verdict.UNDECIDED


def test_later_looks_are_held_to_a_stricter_bound() -> None:
    first = judge(Arm(1000, 40), Arm(1000, 40), margin=0.01, confidence=0.95, look=0)
    later = judge(Arm(1000, 40), Arm(1000, 40), margin=0.01, confidence=0.95, look=3)
    assert later.bound > first.bound


def test_wrong_promotions_stay_under_alpha_by_simulation() -> None:
    """A canary worse by exactly the margin: promoted (ever) at most alpha of the time."""
    rng = random.Random(7)
    promoted = 0
    runs = 300
    for _ in range(runs):
        base = canary = Arm()
        for look in range(5):
            size = look_size(50, look)
            while canary.examples < size:
                canary = Arm(canary.examples + 1, canary.errors + (rng.random() < 0.06))
                for _ in range(4):
                    base = Arm(base.examples + 1, base.errors + (rng.random() < 0.05))
            verdict = judge(base, canary, margin=0.01, confidence=0.95, look=look).verdict
            if verdict is not Verdict.UNDECIDED:
                promoted += verdict is Verdict.NOT_WORSE
                break
    assert promoted / runs <= 0.05


def _reader(data: dict[str, object]) -> Reader:
    return Reader(data, ("models", 0, "rollout"), source="ketch.toml")


def test_rollout_settings_are_read_with_their_defaults() -> None:
    config = read_rollout(_reader({"to": "2"}), {"1", "2"}, "1")
    assert config.steps == (0.05, 0.25, 0.5, 1.0)
    assert config.min_feedback == 200
    assert config.max_p99_ms is None


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"to": "3"}, "to: unknown version '3'"),
        ({"to": "1"}, "already answers every request"),
        ({"to": "2", "steps": [0.5, 0.25, 1.0]}, "must rise"),
        ({"to": "2", "steps": [0.1, 0.5]}, "last step must be 1.0"),
        ({"to": "2", "steps": [0, 1.0]}, "above 0"),
        ({"to": "2", "confidence": 1.0}, "below 1"),
        ({"to": "2", "min_feedback": 0}, "at least 1"),
        ({"to": "2", "speed": 3}, "unknown key"),
    ],
)
def test_bad_rollout_settings_name_the_key(settings: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        read_rollout(_reader(settings), {"1", "2"}, "1")
    assert "models[0].rollout" in str(raised.value)


def test_split_shares_must_add_up_to_one() -> None:
    assert read_split(_reader({"1": 0.9, "2": 0.1}), {"1", "2"}) == {"1": 0.9, "2": 0.1}
    with pytest.raises(ConfigError, match="add up to 1"):
        read_split(_reader({"1": 0.9, "2": 0.2}), {"1", "2"})
    with pytest.raises(ConfigError, match="unknown version"):
        read_split(_reader({"1": 0.5, "7": 0.5}), {"1", "2"})


def test_a_shadow_must_be_another_version() -> None:
    assert read_shadow(_reader({"version": "2", "share": 0.2}), {"1", "2"}, "1").share == 0.2
    with pytest.raises(ConfigError, match="the version that answers"):
        read_shadow(_reader({"version": "1", "share": 0.2}), {"1", "2"}, "1")
    with pytest.raises(ConfigError, match="share"):
        read_shadow(_reader({"version": "2", "share": 1.5}), {"1", "2"}, "1")


def test_answers_are_read_as_decisions() -> None:
    assert decision([0.1, 0.7, 0.2]) == 1
    assert decision([3]) == 3
    assert decision("spam") == "spam"
    assert agree([0.1, 0.9], 1)
    assert is_wrong(7, 3)
    assert not is_wrong([0.0, 0.0, 1.0], 2)
