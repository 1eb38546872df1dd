"""Naming rules: full names, topic templates and defaults, retry/DLQ topics, object names, auto-partitioning."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algorun.api import naming


def test_full_names_round_trip() -> None:
    assert naming.algo_full_name("tests", "echo", "1.0", 2) == "tests/echo:1.0[2]"
    assert naming.parse_full_name("tests/echo:1.0[2]") == ("tests", "echo", "1.0", 2)
    assert naming.parse_full_name("file-source:3.9[1]") == (None, "file-source", "3.9", 1)
    assert naming.parse_full_name("Endpoint") is None


def test_topic_template_substitutes_any_case_and_lowercases() -> None:
    name = naming.resolve_topic_template("AlgoRun.{DeploymentOwner}.{deploymentname}.Out", "Acme", "Orders")
    assert name == "algorun.acme.orders.out"


def test_retry_and_dead_letter_topics_belong_to_the_consumer() -> None:
    a = naming.retry_topic("o", "n", "algo-a", 1, "30s")
    b = naming.retry_topic("o", "n", "algo-b", 1, "30s")
    assert a == "algorun.o.n.algo-a.1.retry.30s" and a != b
    assert naming.dead_letter_topic("o", "n", "algo-a", 1) == "algorun.o.n.algo-a.1.dlq"
    assert naming.dead_letter_topic("o", "n", "algo-a", 1, "failed") == "algorun.o.n.algo-a.1.failed"


def test_consumer_group_keeps_the_original_format() -> None:
    assert naming.consumer_group("local", "dep", "tests", "echo", 1) == "algorun-local-dep-tests-echo-1"


@pytest.mark.parametrize(
    ("capacities", "expected"),
    [
        ([], 2),  # 1 + round(0.5) = 2: Python's round() would give 1
        ([1], 3),  # 2 + round(1.0)
        ([1, 1], 6),  # 4 + round(2.0)
        ([2], 5),  # 3 + round(1.5)
        ([4], 8),  # 5 + round(2.5) = 8: banker's rounding would give 7
    ],
)
def test_auto_partitions_rounds_half_away_from_zero(capacities: list[int], expected: int) -> None:
    assert naming.auto_partitions(capacities) == expected


def test_kafka_topic_rules() -> None:
    assert naming.kafka_topic_problem("algorun.a-b_c.1") is None
    assert naming.kafka_topic_problem("..") is not None
    assert naming.kafka_topic_problem("a" * 250) is not None
    problem = naming.kafka_topic_problem("a/b c")
    assert problem is not None and '"/"' in problem and '" "' in problem


@given(st.lists(st.text(min_size=0, max_size=80), min_size=1, max_size=6))
def test_object_names_are_dns_labels_and_deterministic(parts: list[str]) -> None:
    name = naming.object_name(*parts)
    assert naming.is_dns_label(name)
    assert name == naming.object_name(*parts)


def test_long_object_names_stay_distinct() -> None:
    a = naming.object_name("x" * 70, "a")
    b = naming.object_name("x" * 70, "b")
    assert len(a) == len(b) == 63 and a != b
    assert naming.object_name("Local", "test_deployment") == "local-test-deployment"


@pytest.mark.parametrize(
    ("name", "valid"),
    [("orders-clients", True), ("a.b-c.d", True), ("a..b", False), ("a.-b", False), ("-a", False), ("A", False)],
)
def test_secret_names_are_dot_separated_dns_labels(name: str, valid: bool) -> None:
    assert naming.is_dns_subdomain(name) is valid
