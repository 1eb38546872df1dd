"""`Delegated` algos: no runner; the algo does its own Kafka I/O and is told its topics by environment variables
(the original's names): KAFKA_BROKERS, KAFKA_INPUT_TOPIC_{INPUT}, KAFKA_OUTPUT_TOPIC_{OUTPUT}, plus the
consumer group (ALGORUN_CONSUMER_GROUP) and the dead-letter topic (ALGORUN_DEAD_LETTER_TOPIC)."""

from __future__ import annotations

import re

from algorun.api.configs import RunnerConfig

_NOT_ENV = re.compile(r"[^A-Za-z0-9_]")


def env_name(name: str) -> str:
    return _NOT_ENV.sub("_", name).upper()


def delegated_env(config: RunnerConfig, brokers: str | None = None) -> dict[str, str]:
    """Variables for a Delegated algo. An input fed by several pipes gets its topics comma-separated."""
    env: dict[str, str] = {
        "ALGORUN_CONSUMER_GROUP": config.consumer_group,
        "ALGORUN_DEAD_LETTER_TOPIC": config.retry.dead_letter_topic,
    }
    if brokers or config.kafka.brokers:
        env["KAFKA_BROKERS"] = brokers or config.kafka.brokers or ""
    for i in config.inputs:
        if i.topics:
            env[f"KAFKA_INPUT_TOPIC_{env_name(i.name)}"] = ",".join(t.topic for t in i.topics)
    for o in config.outputs:
        if o.topic:
            env[f"KAFKA_OUTPUT_TOPIC_{env_name(o.name)}"] = o.topic
    return env
