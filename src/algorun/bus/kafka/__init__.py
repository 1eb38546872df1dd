"""The Kafka backend of `algorun.bus`, on confluent-kafka (librdkafka)."""

from algorun.bus.kafka.bus import KafkaBus

__all__ = ["KafkaBus"]
