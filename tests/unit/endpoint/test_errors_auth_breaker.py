"""Error bodies, client authentication and the circuit breaker: pure state, no servers."""

from __future__ import annotations

import pytest

from algorun.breaker import CircuitBreaker, State
from algorun.endpoint import errors
from algorun.endpoint.auth import Credentials
from algorun.endpoint.errors import Code, EndpointError


def test_error_body_keeps_the_original_shape() -> None:
    err = errors.unknown_path("o", "n", "x", ["a", "b"])
    assert err.body() == {
        "errors": [{"errorCode": 50002, "message": 'no endpoint path "o/n/x" (paths: "a", "b")'}],
        "statusCode": 404,
        "message": "Failed to run endpoint",
    }


def test_retry_after_is_a_whole_positive_number_of_seconds() -> None:
    assert errors.overloaded("busy").response_headers() == {"Retry-After": "1"}
    assert errors.broker_unavailable("down", 0).response_headers() == {"Retry-After": "1"}
    assert EndpointError(400, Code.BAD_BODY, "x").response_headers() == {}


def test_no_credentials_configured_lets_everything_through() -> None:
    Credentials().check(None, None)


@pytest.mark.parametrize(
    ("authorization", "api_key", "status"),
    [
        (None, None, 401),
        ("Bearer", None, 401),
        ("Basic abc", None, 401),
        ("Bearer nope", None, 403),
        (None, "nope", 403),
        ("Bearer tok", None, None),
        ("bearer  tok ", None, None),
        (None, "key", None),
        ("Bearer nope", "key", None),
    ],
)
def test_bearer_tokens_and_api_keys(authorization: str | None, api_key: str | None, status: int | None) -> None:
    creds = Credentials(frozenset({"tok"}), frozenset({"key"}))
    if status is None:
        creds.check(authorization, api_key)
    else:
        with pytest.raises(EndpointError) as err:
            creds.check(authorization, api_key)
        assert err.value.status == status


def test_breaker_opens_after_consecutive_failures_and_probes_after_the_timeout() -> None:
    b = CircuitBreaker(fails=2, timeout=10, requests=1)
    b.failure(0)
    assert b.state is State.CLOSED and b.allow(0)
    b.failure(1)
    assert b.state is State.OPEN
    assert not b.allow(5)
    assert b.retry_after(5) == 6
    assert b.allow(11)  # the one probe
    assert b.state is State.HALF_OPEN
    assert not b.allow(11)
    b.failure(12)
    assert b.state is State.OPEN and not b.allow(13)
    assert b.allow(22)
    b.success()
    assert b.state is State.CLOSED and b.allow(22)


def test_half_open_lets_requests_probes_through_and_closes_after_as_many_successes() -> None:
    b = CircuitBreaker(fails=1, timeout=10, requests=3)
    b.failure(0)
    assert [b.allow(10) for _ in range(4)] == [True, True, True, False]
    b.success()
    b.success()
    assert b.state is State.HALF_OPEN and not b.allow(11)
    b.success()
    assert b.state is State.CLOSED and b.allow(11)


def test_a_failed_probe_reopens_even_after_some_succeeded() -> None:
    b = CircuitBreaker(fails=1, timeout=10, requests=3)
    b.failure(0)
    assert b.allow(10) and b.allow(10)
    b.success()
    b.failure(11)
    assert b.state is State.OPEN and not b.allow(12) and b.retry_after(12) == 9
    assert b.allow(21)  # a new half-open round: the count starts again
    assert b.state is State.HALF_OPEN


def test_a_late_acknowledgement_does_not_close_an_open_breaker() -> None:
    """A message sent before the breaker opened proves nothing about the broker now (gobreaker ignores it too);
    the log forwarder's fresh write does."""
    b = CircuitBreaker(fails=1, timeout=10)
    b.failure(0)
    b.success()
    assert b.state is State.OPEN
    b.recovered()
    assert b.state is State.CLOSED and b.consecutive_failures == 0


def test_the_interval_clears_failures_counted_while_closed() -> None:
    b = CircuitBreaker(fails=3, timeout=10, interval=60)
    b.failure(0)
    b.failure(30)
    b.failure(61)  # the count from 0 expired at 60: this is the first of a new window
    assert b.state is State.CLOSED and b.consecutive_failures == 1
    b.failure(62)
    b.failure(63)
    assert b.state is State.OPEN


def test_without_an_interval_failures_are_never_cleared_by_time() -> None:
    b = CircuitBreaker(fails=3, timeout=10)
    b.failure(0)
    b.failure(1000)
    b.failure(10**6)
    assert b.state is State.OPEN


def test_a_success_resets_the_failure_count() -> None:
    b = CircuitBreaker(fails=2, timeout=1)
    b.failure(0)
    b.success()
    b.failure(0)
    assert b.state is State.CLOSED


def test_breaker_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="fails"):
        CircuitBreaker(fails=0)
    with pytest.raises(ValueError, match="requests"):
        CircuitBreaker(requests=0)
    with pytest.raises(ValueError, match="interval"):
        CircuitBreaker(interval=-1)
