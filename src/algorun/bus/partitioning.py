"""Which partition a key goes to: the same answer on both backends, so a pipeline behaves the same everywhere.

librdkafka's default partitioner (`consistent_random`) maps a key to CRC-32(key) mod partitions; the Kafka
backend keeps that default and the local log uses this function. Keyless messages are spread round-robin.
"""

from __future__ import annotations

import zlib


def partition_for_key(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions
