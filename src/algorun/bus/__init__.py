"""The data plane: one small asyncio interface over Kafka (`kafka://`) or an embedded SQLite log (`local://`).

See `interface.py` for the semantics both backends share, `contract.py` for the message headers.
"""

from algorun.bus.batch import Failures
from algorun.bus.errors import (
    AuthenticationFailed,
    BrokerUnreachable,
    BusClosed,
    BusError,
    ConfigError,
    MessageTooLarge,
    NotAuthorized,
    ProduceFailed,
    TopicExists,
    TransactionError,
    UnknownTopic,
)
from algorun.bus.interface import Bus, Consumer, PartitionsCallback, Producer
from algorun.bus.settings import AuthType, KafkaSettings
from algorun.bus.types import (
    Headers,
    Message,
    OutMessage,
    OutRecord,
    PartitionLag,
    Receipt,
    TopicInfo,
    TopicPartition,
    TopicSpec,
)
from algorun.bus.url import open_bus

__all__ = [
    "AuthType",
    "AuthenticationFailed",
    "BrokerUnreachable",
    "Bus",
    "BusClosed",
    "BusError",
    "ConfigError",
    "Consumer",
    "Failures",
    "Headers",
    "KafkaSettings",
    "Message",
    "MessageTooLarge",
    "NotAuthorized",
    "OutMessage",
    "OutRecord",
    "PartitionLag",
    "PartitionsCallback",
    "ProduceFailed",
    "Producer",
    "Receipt",
    "TopicExists",
    "TopicInfo",
    "TopicPartition",
    "TopicSpec",
    "TransactionError",
    "UnknownTopic",
    "open_bus",
]
