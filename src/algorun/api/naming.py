"""Every generated name, as pure functions: component full names, topics, consumer groups, object names.

Topic names follow the original: the template's `{deploymentowner}` and `{deploymentname}` are substituted and
the whole name is lower-cased, so existing topics keep their names. When a topic has no `topicName`, algorun
uses a documented default:

    endpoint path:      algorun.{deploymentowner}.{deploymentname}.endpoint.{path}
    algo output:        algorun.{deploymentowner}.{deploymentname}.{algo name}.{index}.{output}
    connector output:   algorun.{deploymentowner}.{deploymentname}.{connector name}.{index}.{output}

Retry and dead-letter topics belong to the *consuming* algo, so two algos reading one topic never share, and
fight over, the same retry topics:

    retry step:         algorun.{owner}.{name}.{algo name}.{index}.retry.{backoff}
    dead letters:       algorun.{owner}.{name}.{algo name}.{index}.{deadLetterSuffix or "dlq"}
    hook dead letters:  algorun.{owner}.{name}.hook.dlq
"""

from __future__ import annotations

import hashlib
import re
from decimal import ROUND_HALF_UP, Decimal

MAX_OBJECT_NAME = 63
KAFKA_TOPIC_MAX = 249
_KAFKA_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_FULL_NAME = re.compile(r"^(?:(?P<owner>[^/\s]+)/)?(?P<name>[^:/\s]+):(?P<version>[^\[\s]+)\[(?P<index>\d+)\]$")


def algo_full_name(owner: str, name: str, version: str, index: int) -> str:
    """`owner/name:version[index]`: how pipes name an algo instance."""
    return f"{owner}/{name}:{version}[{index}]"


def connector_full_name(name: str, version: str, index: int) -> str:
    """`name:version[index]`: how pipes name a data connector instance."""
    return f"{name}:{version}[{index}]"


def parse_full_name(text: str) -> tuple[str | None, str, str, int] | None:
    """(owner or None, name, version, index) of a full name, or None when it is not one."""
    match = _FULL_NAME.match(text)
    if not match:
        return None
    return match["owner"], match["name"], match["version"], int(match["index"])


def topic_key(source_name: str, output_name: str) -> str:
    """The key of a topic in component configs: `"{sourceName}|{sourceOutputName}"`."""
    return f"{source_name}|{output_name}"


def resolve_topic_template(template: str, deployment_owner: str, deployment_name: str) -> str:
    """Substitute `{deploymentowner}`/`{deploymentname}` (any case) and lower-case (module docstring)."""
    result = re.sub(r"\{deploymentowner\}", deployment_owner, template, flags=re.IGNORECASE)
    result = re.sub(r"\{deploymentname\}", deployment_name, result, flags=re.IGNORECASE)
    return result.lower()


def _prefix(deployment_owner: str, deployment_name: str) -> str:
    return f"algorun.{deployment_owner}.{deployment_name}".lower()


def default_endpoint_topic(deployment_owner: str, deployment_name: str, path: str) -> str:
    return f"{_prefix(deployment_owner, deployment_name)}.endpoint.{path}".lower()


def default_output_topic(
    deployment_owner: str, deployment_name: str, component_name: str, index: int, output: str
) -> str:
    """Default topic of an algo or data-connector output."""
    return f"{_prefix(deployment_owner, deployment_name)}.{component_name}.{index}.{output}".lower()


def retry_topic(deployment_owner: str, deployment_name: str, algo_name: str, index: int, backoff: str) -> str:
    """The retry topic of one backoff step of one consuming algo instance."""
    return f"{_prefix(deployment_owner, deployment_name)}.{algo_name}.{index}.retry.{backoff}".lower()


def dead_letter_topic(
    deployment_owner: str, deployment_name: str, algo_name: str, index: int, suffix: str | None = None
) -> str:
    """The dead-letter topic of one consuming algo instance."""
    return f"{_prefix(deployment_owner, deployment_name)}.{algo_name}.{index}.{suffix or 'dlq'}".lower()


def hook_dead_letter_topic(deployment_owner: str, deployment_name: str) -> str:
    return f"{_prefix(deployment_owner, deployment_name)}.hook.dlq"


def consumer_group(deployment_owner: str, deployment_name: str, algo_owner: str, algo_name: str, index: int) -> str:
    """The consumer group of an algo instance (the original's format, kept so offsets carry over)."""
    return f"algorun-{deployment_owner}-{deployment_name}-{algo_owner}-{algo_name}-{index}"


def hook_consumer_group(deployment_owner: str, deployment_name: str) -> str:
    return f"algorun-{deployment_owner}-{deployment_name}-hook"


def kafka_topic_problem(topic: str) -> str | None:
    """Why `topic` is not a legal Kafka topic name, or None."""
    if not topic:
        return "empty topic name"
    if topic in (".", ".."):
        return f'topic name "{topic}" is reserved'
    if len(topic) > KAFKA_TOPIC_MAX:
        return f"topic name is {len(topic)} characters long; Kafka allows {KAFKA_TOPIC_MAX}"
    if not _KAFKA_TOPIC.match(topic):
        bad = sorted({c for c in topic if not re.match(r"[a-zA-Z0-9._-]", c)})
        listed = " ".join(f'"{c}"' for c in bad)
        return f'topic name "{topic}" has characters Kafka refuses: {listed}'
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` cannot be a Kubernetes label value, or None."""
    if len(value) > MAX_OBJECT_NAME:
        return f'"{value}" is {len(value)} characters long; a Kubernetes label value allows {MAX_OBJECT_NAME}'
    if not _LABEL_VALUE.match(value):
        return (
            f'"{value}" is not a valid Kubernetes label value (letters, digits, "-", "_" and ".", '
            "starting and ending with a letter or digit)"
        )
    return None


def object_name(*parts: str | int, max_length: int = MAX_OBJECT_NAME) -> str:
    """A deterministic DNS-1123 label from `parts`: lower-cased, other characters turned into `-`.

    A name longer than `max_length` is cut and given an 8-hex hash suffix of the full name, so distinct long
    inputs stay distinct and the same input always yields the same name (no `generateName`).
    """
    raw = "-".join(str(p) for p in parts if str(p) != "")
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-") or "x"
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: max_length - 9].rstrip('-')}-{digest}"


def is_dns_label(name: str) -> bool:
    return len(name) <= MAX_OBJECT_NAME and bool(_DNS_LABEL.match(name))


DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""Dot-separated DNS labels: the name of most Kubernetes objects (Secrets, ConfigMaps), at most 253 characters."""
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
"""A key of a Secret's or ConfigMap's data."""
_SECRET_KEY = re.compile(SECRET_KEY_PATTERN)


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def is_secret_key(key: str) -> bool:
    return len(key) <= 253 and bool(_SECRET_KEY.match(key))


def round_half_away_from_zero(value: float) -> int:
    """Go's math.Round. Python's round() rounds half to even, which gives 1 -> 1 where Go gives 2."""
    return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def auto_partitions(consumer_capacities: list[int]) -> int:
    """Partitions of an auto-partitioned topic, exactly as the original computes them.

    `consumer_capacities` has, per pipe that reads the topic, the consumer's capacity figure
    (max(replicas, autoscaling max replicas)). Starting from p = 1, each consumer adds max(capacity, p);
    then p grows by half, rounded half away from zero.
    """
    p = 1
    for capacity in consumer_capacities:
        p += max(capacity, p)
    return p + round_half_away_from_zero(p * 0.5)
