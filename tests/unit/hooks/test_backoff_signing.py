"""Retry timing and signatures: pure functions, checked exactly and with properties."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algorun.webhook.backoff import RetryPolicy
from algorun.webhook.signing import PREFIX, sign, verify


def test_steps_double_from_base_up_to_the_cap() -> None:
    policy = RetryPolicy(base_s=0.5, max_delay_s=4.0)
    assert [policy.step(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert policy.step(10_000) == 4.0  # no overflow for absurd attempt numbers


@given(attempt=st.integers(min_value=1, max_value=200), seed=st.integers())
def test_equal_jitter_stays_between_half_and_the_whole_step(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base_s=0.2, max_delay_s=30.0)
    wait = policy.delay(attempt, random.Random(seed))
    step = policy.step(attempt)
    assert step / 2 <= wait <= step


def test_jitter_spreads_retries_of_many_messages() -> None:
    policy = RetryPolicy(base_s=1.0, max_delay_s=8.0)
    rng = random.Random(7)
    waits = {round(policy.delay(4, rng), 6) for _ in range(100)}
    assert len(waits) > 90, "every message would retry at the same instant"


def test_retry_after_is_a_lower_bound_capped_by_the_policy() -> None:
    policy = RetryPolicy(base_s=0.1, max_delay_s=5.0)
    rng = random.Random(1)
    assert policy.delay(1, rng, retry_after=3.0) == 3.0
    assert policy.delay(1, rng, retry_after=3600.0) == 5.0
    assert policy.delay(1, rng, retry_after=0.0) <= 0.1


def test_gives_up_on_attempts_or_when_the_next_try_would_pass_the_budget() -> None:
    policy = RetryPolicy(max_attempts=3, budget_s=10.0)
    assert not policy.gives_up(2, 1.0, 1.0)
    assert policy.gives_up(3, 1.0, 1.0)
    assert policy.gives_up(1, 9.5, 1.0)
    unlimited = RetryPolicy(max_attempts=0, budget_s=10.0)
    assert not unlimited.gives_up(1000, 5.0, 5.0)
    assert unlimited.gives_up(1000, 5.0, 5.1)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": -1}, {"budget_s": -1.0}, {"base_s": 0.0}, {"base_s": 2.0, "max_delay_s": 1.0}]
)
def test_impossible_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry policy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_signature_is_hmac_sha256_hex_of_the_body() -> None:
    expected = hmac.new(b"s3cret", b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign(b"s3cret", b'{"a":1}') == f"sha256={expected}"


@given(secret=st.binary(min_size=1), body=st.binary())
def test_a_signature_verifies_only_for_its_body_and_secret(secret: bytes, body: bytes) -> None:
    header = sign(secret, body)
    assert verify(secret, body, header)
    assert not verify(secret + b"x", body, header)
    assert not verify(secret, body + b"x", header)


@pytest.mark.parametrize(
    "header",
    [None, "", "sha1=abc", "deadbeef", PREFIX, PREFIX + "00" * 32],
)
def test_malformed_or_wrong_signatures_do_not_verify(header: str | None) -> None:
    assert not verify(b"k", b"body", header)


def test_verification_tolerates_case_and_surrounding_space() -> None:
    header = sign(b"k", b"body")
    assert verify(b"k", b"body", f"  SHA256={header[len(PREFIX) :].upper()} ")
