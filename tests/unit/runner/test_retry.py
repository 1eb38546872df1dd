"""Retry routing: step transitions for any `repeat` values (the original skipped steps with unequal repeats)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from algorun.api.base import RetryStep, RetryStrategy
from algorun.api.enums import RetryStrategyKind
from algorun.runner.retry import Mode, RetryState, next_attempt, plan


def strategy(kind: str, *steps: tuple[int, str, int]) -> RetryStrategy:
    return RetryStrategy(
        strategy=RetryStrategyKind(kind),
        steps=[RetryStep(index=i, backoff_duration=b, repeat=r) for i, b, r in steps],
    )


def attempts(p: object, now: float = 1000.0) -> list[tuple[int, int, float]]:
    """Every retry a message gets before the dead-letter topic: (step index, retry num, delay)."""
    state = RetryState()
    out = []
    while (d := next_attempt(p, state, now)) is not None:  # type: ignore[arg-type]
        out.append((d.step.index, d.retry_num, round(d.due - now, 6)))
        state = RetryState(d.step.index, d.retry_num)
        assert len(out) < 1000
    return out


def test_unequal_repeats_walk_every_step() -> None:
    p = plan(True, strategy("RetryTopics", (0, "1s", 1), (1, "5s", 2), (2, "1m", 3)))
    assert p.mode is Mode.RETRY_TOPIC
    assert attempts(p) == [(0, 1, 1.0), (1, 1, 5.0), (1, 2, 5.0), (2, 1, 60.0), (2, 2, 60.0), (2, 3, 60.0)]


def test_steps_are_ordered_by_index_and_repeat_zero_is_one() -> None:
    p = plan(True, strategy("Simple", (5, "2s", 0), (1, "100ms", 2)))
    assert p.mode is Mode.IN_PLACE
    assert attempts(p) == [(1, 1, 0.1), (1, 2, 0.1), (5, 1, 2.0)]


def test_disabled_or_empty_goes_straight_to_the_dead_letter_topic() -> None:
    s = strategy("RetryTopics", (0, "1s", 3))
    assert plan(False, s).mode is Mode.DEAD_LETTER
    assert attempts(plan(False, s)) == []
    assert attempts(plan(True, None)) == []
    assert attempts(plan(True, strategy("Simple"))) == []


def test_topic_override_wins() -> None:
    algo = strategy("RetryTopics", (0, "1s", 1))
    topic = strategy("Simple", (0, "10ms", 4))
    p = plan(True, algo, topic)
    assert p.mode is Mode.IN_PLACE
    assert len(attempts(p)) == 4


def test_a_state_from_a_removed_step_moves_on() -> None:
    p = plan(True, strategy("RetryTopics", (0, "1s", 1), (4, "2s", 1)))
    d = next_attempt(p, RetryState(step_index=2, retry_num=7), 0.0)
    assert d is not None
    assert (d.step.index, d.retry_num) == (4, 1)
    assert next_attempt(p, RetryState(step_index=9, retry_num=1), 0.0) is None


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 4)), min_size=1, max_size=6, unique_by=lambda t: t[0]))
def test_total_retries_is_the_sum_of_repeats(steps: list[tuple[int, int]]) -> None:
    p = plan(True, strategy("RetryTopics", *[(i, "1s", r) for i, r in steps]))
    got = attempts(p)
    assert len(got) == sum(max(1, r) for _, r in steps)
    assert [s for s, _, _ in got] == sorted(s for s, _, _ in got)  # steps never go back
    assert p.max_attempts == len(got) + 1
