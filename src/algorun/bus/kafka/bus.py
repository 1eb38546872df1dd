"""The Kafka `Bus`: topics through the admin client; producers and consumers from one `KafkaSettings`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as _TP
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from algorun.bus.errors import BrokerUnreachable, BusError, TopicExists
from algorun.bus.interface import Bus, PartitionsCallback
from algorun.bus.kafka.consumer import KafkaConsumer
from algorun.bus.kafka.errors import is_auth_error, translate
from algorun.bus.kafka.producer import KafkaProducer
from algorun.bus.settings import KafkaSettings
from algorun.bus.types import PartitionLag, TopicInfo, TopicPartition, TopicSpec

log = logging.getLogger(__name__)
ADMIN_TIMEOUT_S = 15.0


class KafkaBus(Bus):
    """The `Bus` on a Kafka cluster: one admin client for topics, created on first use; every producer and
    consumer is configured from the same `KafkaSettings`, so they reach the same brokers with the same security."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.url = f"kafka://{settings.bootstrap_servers}"
        self._where = f"Kafka {settings.bootstrap_servers}"
        self._auth_error: BusError | None = None
        self._admin_client: AdminClient | None = None

    @property
    def supports_transactions(self) -> bool:
        return True

    def _on_error(self, err: KafkaError) -> None:
        if is_auth_error(err):
            self._auth_error = translate(err, f"connect to {self._where}")
        log.debug("%s admin: %s", self._where, err.str())

    def _check_auth(self) -> None:
        self._admin.poll(0)
        if self._auth_error is not None:
            raise self._auth_error

    @property
    def _admin(self) -> AdminClient:
        if self._admin_client is None:
            conf: dict[str, Any] = dict(self.settings.client_config())
            conf["error_cb"] = self._on_error
            self._admin_client = AdminClient(conf)
        return self._admin_client

    def _failure(self, e: BaseException, what: str) -> BusError:
        """Prefer the authentication error the client reported over the timeout it caused."""
        err = translate(e, f"{what} on {self._where}")
        if isinstance(err, BrokerUnreachable) and self._auth_error is not None:
            return self._auth_error
        return err

    async def _run(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, lambda: fn(*args, **kwargs))
        except KafkaException as e:
            self._check_auth()
            raise self._failure(e, what) from e

    async def _wait(self, what: str, futures: dict[str, Any], ignore: set[int] | None = None) -> None:
        for name, fut in futures.items():
            try:
                await asyncio.wrap_future(fut)
            except KafkaException as e:
                err = e.args[0] if e.args else None
                if ignore and isinstance(err, KafkaError) and err.code() in ignore:
                    continue
                self._admin.poll(0)
                raise self._failure(e, f"{what} {name}") from e

    async def create_topics(self, topics: Sequence[TopicSpec], *, exist_ok: bool = True) -> None:
        if not topics:
            return
        new = [
            NewTopic(
                t.name,
                num_partitions=t.partitions,
                replication_factor=t.replication_factor,
                config={k: v for k, v in t.config.items() if k != "retention.messages"},
            )
            for t in topics
        ]
        futures = self._admin.create_topics(new, request_timeout=ADMIN_TIMEOUT_S)
        try:
            await self._wait("create topic", futures, {KafkaError.TOPIC_ALREADY_EXISTS} if exist_ok else None)
        except TopicExists:
            raise
        # New topics take a moment to reach every broker's metadata; wait until they are visible.
        names = {t.name for t in topics}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ADMIN_TIMEOUT_S
        while loop.time() < deadline:
            known = await self.list_topics()
            if names <= known.keys() and all(known[n].partitions > 0 for n in names):
                return
            await asyncio.sleep(0.1)

    async def delete_topics(self, names: Sequence[str]) -> None:
        if names:
            futures = self._admin.delete_topics(list(names), request_timeout=ADMIN_TIMEOUT_S)
            await self._wait("delete topic", futures, {KafkaError.UNKNOWN_TOPIC_OR_PART})

    async def list_topics(self) -> dict[str, TopicInfo]:
        # Short attempts, so a rejected identity (reported through error_cb) fails fast, not at the timeout.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ADMIN_TIMEOUT_S
        while True:
            try:
                meta = await self._run("list topics", self._admin.list_topics, timeout=1.0)
                break
            except BrokerUnreachable:
                if loop.time() >= deadline:
                    raise
        return {
            name: TopicInfo(name, len(t.partitions))
            for name, t in meta.topics.items()
            if t.error is None and not name.startswith("__")
        }

    def producer(self, *, transactional_id: str | None = None) -> KafkaProducer:
        return KafkaProducer(self.settings, transactional_id)

    def consumer(
        self,
        group: str | None,
        topics: Sequence[str],
        *,
        from_beginning: bool = True,
        on_assign: PartitionsCallback | None = None,
        on_revoke: PartitionsCallback | None = None,
    ) -> KafkaConsumer:
        return KafkaConsumer(
            self.settings,
            group,
            topics,
            from_beginning=from_beginning,
            on_assign=on_assign,
            on_revoke=on_revoke,
        )

    async def lag(self, group: str, topics: Sequence[str]) -> dict[TopicPartition, PartitionLag]:
        """Committed offsets from the group coordinator, watermarks from the partition leaders."""
        from confluent_kafka import Consumer as _Consumer

        conf: dict[str, Any] = dict(self.settings.client_config())
        conf.update({"group.id": group, "enable.auto.commit": False})

        def query() -> dict[TopicPartition, PartitionLag]:
            c = _Consumer(conf)
            try:
                meta = c.list_topics(timeout=ADMIN_TIMEOUT_S)
                tps = [
                    _TP(name, p)
                    for name in topics
                    if (t := meta.topics.get(name)) is not None and t.error is None
                    for p in t.partitions
                ]
                committed = c.committed(tps, timeout=ADMIN_TIMEOUT_S) if tps else []
                out: dict[TopicPartition, PartitionLag] = {}
                for tp in committed:
                    low, high = c.get_watermark_offsets(_TP(tp.topic, tp.partition), timeout=ADMIN_TIMEOUT_S)
                    out[TopicPartition(tp.topic, tp.partition)] = PartitionLag(
                        committed=tp.offset if tp.offset >= 0 else None, end=high, start=low
                    )
                return out
            finally:
                c.close()

        return await self._run(f"lag of group {group}", query)  # type: ignore[no-any-return]

    async def close(self) -> None:
        self._admin_client = None
