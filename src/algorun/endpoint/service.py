"""Wiring of one endpoint process: publisher (+ write-ahead log), HTTP and gRPC servers, monitoring server.

Start order: the log is opened (and its backlog scheduled for forwarding) before any server listens, so nothing
is accepted that could not be stored. Stop order: servers stop accepting, in-flight requests finish, the
publisher drains, the producer flushes; what is still in the log stays on disk for the next start.

Readiness (`/ready`, on the HTTP and the monitoring port) is 200 only when a request would be stored: the broker
answered a metadata request and every path's topic exists (with a write-ahead log, an unreachable broker is
fine: the log takes the data); without a log, the circuit breaker would let a request through (not open within
its timeout, not half-open with every probe under way); with a log, it is not full and its forwarder can read
and delete records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from functools import partial

import grpc
from aiohttp import web
from prometheus_client import CollectorRegistry

from algorun.api.configs import EndpointConfig
from algorun.breaker import CircuitBreaker, State
from algorun.bus.errors import BusError
from algorun.bus.interface import Bus, Producer
from algorun.bus.kafka.record_size import KAFKA_MESSAGE_MAX_BYTES
from algorun.bus.settings import KafkaSettings
from algorun.endpoint.auth import CredentialsDirectory
from algorun.endpoint.claimcheck import PayloadStore
from algorun.endpoint.grpc_api import GrpcApi
from algorun.endpoint.http_app import HttpApi
from algorun.endpoint.metrics import EndpointMetrics
from algorun.endpoint.publisher import Publisher
from algorun.endpoint.settings import EndpointSettings
from algorun.endpoint.tls import RELOAD_CHECK_S, ServingCertificate
from algorun.endpoint.wal import WriteAheadLog
from algorun.telemetry import HealthServer, Readiness

log = logging.getLogger(__name__)
SHUTDOWN_GRACE_S = 5.0
PROBE_TIMEOUT_S = 5.0
PROBE_INTERVAL_S = 1.0
BREAKER_NOT_READY = {
    State.OPEN: "the broker is not acknowledging messages (circuit breaker open) and there is no write-ahead log",
    State.HALF_OPEN: "the broker is being tested (circuit breaker half-open, every probe still waiting for its "
    "answer) and there is no write-ahead log",
}


ENDPOINT_PRODUCER_DEFAULTS: dict[str, str | int | float | bool] = {"linger.ms": 3}
"""librdkafka settings of the endpoint's producer over the bus defaults (the pipeline's params override them).

`linger.ms` 3 instead of the bus's 5: every request waits for its message's batch, so the linger is paid by
each client, and a shorter one keeps the core busy instead of waiting on acknowledgements; a still shorter one
sends more, smaller batches and costs more CPU per message than it saves in waiting (`benchmarks/endpoint.py`,
`http.max`, with each value)."""

ENDPOINT_PRODUCER_GUARANTEES: dict[str, str | int | float | bool] = {"acks": "all", "enable.idempotence": True}
"""Set over everything else: a 202 from the broker promises the message is on every in-sync replica, once and in
order (docs/endpoint.md). `acks=1` or no idempotence would let a 202 be lost with a leader, or duplicated."""
GUARANTEE_VALUES: dict[str, frozenset[str]] = {
    "acks": frozenset({"all", "-1"}),
    "request.required.acks": frozenset({"all", "-1"}),  # librdkafka's alias of acks: removed, acks is set instead
    "enable.idempotence": frozenset({"true", "1"}),
}
"""The spellings of the guaranteed values; any other value of these settings is overridden, with a warning."""
PROPAGATION = "topic.metadata.propagation.max.ms"
"""Kept at most half the ack timeout: librdkafka waits that long before it believes a topic does not exist, and
with the bus's 10 s against a shorter ack timeout a missing topic was reported as a delivery timeout (retriable:
retried from the log forever, and an outage for the breaker) instead of `UnknownTopic`."""


def endpoint_kafka_settings(
    kafka: KafkaSettings, settings: EndpointSettings, params: Mapping[str, str] | None = None
) -> KafkaSettings:
    """Producer settings for the endpoint: `ENDPOINT_PRODUCER_DEFAULTS`, then the pipeline's
    `endpoint.kafka.params` (librdkafka tuning), then the security settings from the environment, then the ack
    timeout: a delivery that takes longer counts as failed, so clients are answered (202 from the log, or 503)
    within a bounded time. Last, `ENDPOINT_PRODUCER_GUARANTEES`: tuning must not weaken what a 202 promises."""
    timeout_ms = max(1000, int(settings.ack_timeout_s * 1000))
    producer = {
        **ENDPOINT_PRODUCER_DEFAULTS,
        **(params or {}),
        **kafka.producer_config,
        "message.timeout.ms": timeout_ms,
        "request.timeout.ms": min(30_000, timeout_ms),
    }
    producer[PROPAGATION] = min(int(producer.get(PROPAGATION, timeout_ms)), timeout_ms // 2)
    weakened = [
        f"{name}={producer[name]}"
        for name, spellings in GUARANTEE_VALUES.items()
        if name in producer and str(producer[name]).strip().lower() not in spellings
    ]
    if weakened:
        log.warning(
            "endpoint producer: ignoring %s: the endpoint always uses acks=all and enable.idempotence=true (a 202 "
            "means stored on every in-sync replica, once)",
            ", ".join(weakened),
        )
    for name in GUARANTEE_VALUES:
        producer.pop(name, None)
    producer.update(ENDPOINT_PRODUCER_GUARANTEES)
    return kafka.model_copy(update={"producer_config": producer, "client_id": "algorun-endpoint"})


def _message_max_bytes(bus: Bus) -> int:
    """The producer's `message.max.bytes` (a Kafka bus's setting, else librdkafka's default): what the publisher
    refuses with 413 before it takes a message into the write-ahead log that Kafka would never accept."""
    settings = getattr(bus, "settings", None)
    configured = settings.producer_config.get("message.max.bytes") if isinstance(settings, KafkaSettings) else None
    return int(configured) if configured is not None else KAFKA_MESSAGE_MAX_BYTES


class EndpointService:
    """One endpoint process: starts the log before any server listens and stops the servers before the
    publisher drains, so nothing is accepted that could not be stored (module docstring)."""

    def __init__(
        self,
        config: EndpointConfig,
        settings: EndpointSettings,
        bus: Bus,
        *,
        durable_bus: bool = False,
        store: PayloadStore | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`durable_bus`: the bus itself is a local durable log (no write-ahead log needed in front of it).
        `store`: where bodies over the limit on `FileReference` paths go (None: they get 413)."""
        self.config = config
        self.settings = settings
        self.bus = bus
        self.durable_bus = durable_bus
        self.store = store
        self.broker_seen = False
        self.missing_topics: list[str] | None = None  # None: not known yet
        self._probe: asyncio.Task[None] | None = None
        self.certificate: ServingCertificate | None = None
        self._certificate_watch: asyncio.Task[None] | None = None
        self._credentials_watch: asyncio.Task[None] | None = None
        self.metrics = EndpointMetrics(registry)
        self.readiness = Readiness()
        self.publisher: Publisher | None = None
        self._http: web.ServerRunner | None = None
        self._grpc: grpc.aio.Server | None = None
        self._health: HealthServer | None = None
        self.http_port = 0
        self.grpc_port = 0
        self.monitoring_port = 0

    async def start(self) -> None:
        s = self.settings
        topics = [p.topic for p in self.config.paths]
        wal = None
        if s.wal_enabled(topics) and not self.durable_bus and s.wal_file:
            wal = WriteAheadLog(s.wal_file, max_bytes=s.wal_max_bytes)
            if s.wal_in_memory:
                log.warning("producer.wal.in_memory: the write-ahead log does not survive a restart")
        self.publisher = Publisher(
            self.bus.producer(),
            wal=wal,
            policy=s.wal_policy,
            breaker=CircuitBreaker(
                fails=s.breaker_fails,
                timeout=s.breaker_timeout_s,
                requests=s.breaker_requests,
                interval=s.breaker_interval_s,
            ),
            limits=s.limits,
            metrics=self.metrics,
            resend_rate=s.resend_rate,
            max_message_bytes=_message_max_bytes(self.bus),
        )
        await self.publisher.start()
        self.readiness.add("broker", self._broker_ready)
        self.readiness.add("topics", self._topics_ready)
        self.readiness.add("write-ahead log", self._wal_ready)
        self._probe = asyncio.get_running_loop().create_task(self._probe_broker(), name="broker-probe")

        self._health = HealthServer(s.monitoring.port, self.readiness, self.metrics.registry, host=s.monitoring.host)
        await self._health.start()
        self.monitoring_port = self._health.port or 0

        http = HttpApi(
            self.config,
            self.publisher,
            bus=self.bus,
            metrics=self.metrics,
            readiness=self.readiness,
            credentials=s.credentials,
            max_body_bytes=s.max_body_bytes,
            max_upload_bytes=s.max_upload_bytes,
            store=self.store,
        )
        if s.tls:
            self.certificate = ServingCertificate(s.tls)
            self._certificate_watch = asyncio.get_running_loop().create_task(
                self._keep_checking("the certificate files", self.certificate.reload_http), name="certificate-watch"
            )
        self._http = web.ServerRunner(http.server(), handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
        await self._http.setup()
        site = web.TCPSite(
            self._http,
            s.http.host,
            s.http.port,
            ssl_context=self.certificate.ssl_context if self.certificate else None,
            backlog=1024,
        )
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else s.http.port

        api = GrpcApi(
            self.config,
            self.publisher,
            bus=self.bus,
            metrics=self.metrics,
            credentials=s.credentials,
            max_body_bytes=s.max_body_bytes,
            store=self.store,
        )
        self._grpc = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", s.grpc_max_message_bytes),
                ("grpc.max_send_message_length", s.grpc_max_message_bytes),
            ]
        )
        self._grpc.add_generic_rpc_handlers((api.handler(),))
        if s.credentials_dir is not None:
            self._credentials_watch = asyncio.get_running_loop().create_task(
                self._keep_checking(
                    "the credentials", partial(self._reload_credentials, s.credentials_dir, (http, api))
                ),
                name="credentials-watch",
            )
        address = f"{s.grpc.host}:{s.grpc.port}"
        if self.certificate:
            self.grpc_port = self._grpc.add_secure_port(address, self.certificate.grpc_credentials())
        else:
            self.grpc_port = self._grpc.add_insecure_port(address)
        await self._grpc.start()
        log.info(
            "endpoint %s/%s listening: http %s, grpc %s, monitoring %s; write-ahead log %s",
            self.config.identity.deployment_owner,
            self.config.identity.deployment_name,
            self.http_port,
            self.grpc_port,
            self.monitoring_port,
            wal.path if wal else "off",
        )

    @staticmethod
    async def _keep_checking(what: str, check: Callable[[], object]) -> None:
        """Run `check` every `RELOAD_CHECK_S`, on the loop's own thread (OpenSSL does not allow changing a context
        while another thread makes connections from it). An error is logged and the next round tries again: a
        change missed now is picked up at the next one."""
        while True:
            await asyncio.sleep(RELOAD_CHECK_S)
            try:
                check()
            except Exception:
                log.exception("checking %s failed", what)

    @staticmethod
    def _reload_credentials(directory: CredentialsDirectory, apis: tuple[HttpApi, GrpcApi]) -> None:
        """Rotated tokens and keys take effect without a restart. Files that hold no credential any more are
        refused (the current ones stay): a Secret emptied by mistake must not open the endpoint."""
        if not directory.changed():
            return
        try:
            credentials = directory.read()
        except OSError as e:
            log.error("credentials in %s changed but cannot be read; keeping the current ones: %s", directory.path, e)
            return
        if not credentials.enabled:
            log.error("credentials in %s changed to none; keeping the current ones", directory.path)
            return
        for api in apis:
            api.credentials = credentials
        log.info(
            "credentials reloaded from %s: %d bearer tokens, %d API keys",
            directory.path,
            len(credentials.bearer_tokens),
            len(credentials.api_keys),
        )

    async def _probe_broker(self) -> None:
        """Ask the broker for its topics until it answers and every path's topic exists (then stop asking)."""
        wanted = sorted({p.topic for p in self.config.paths})
        while True:
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    known = await self.bus.list_topics()
            except Exception as e:  # any failure means "not reached yet"; the reason is in the log
                log.info("broker not reachable yet: %s", e)
            else:
                self.broker_seen = True
                self.missing_topics = [t for t in wanted if t not in known]
                if not self.missing_topics:
                    return
                log.warning("waiting for topics to exist: %s", ", ".join(self.missing_topics))
            await asyncio.sleep(PROBE_INTERVAL_S)

    def _has_log(self) -> bool:
        return self.durable_bus or (self.publisher is not None and self.publisher.wal is not None)

    def _broker_ready(self) -> str | None:
        """Without a log, ready only if a request would be sent: not while the breaker refuses, open or half-open
        with every probe slot taken (a breaker stuck half-open is not ready)."""
        p = self.publisher
        if self._has_log():
            return None
        if not self.broker_seen:
            return "the broker has not answered yet (and there is no write-ahead log to take data meanwhile)"
        if p is not None and not p.breaker.admitting(p.clock()):
            return BREAKER_NOT_READY[p.breaker.state]
        return None

    def _topics_ready(self) -> str | None:
        if self.missing_topics:
            return "topics do not exist yet: " + ", ".join(self.missing_topics)
        return None

    def _wal_ready(self) -> str | None:
        """Not ready while the log is full, or while what it takes cannot be forwarded (its file fails, or the
        forwarder stopped): a 202 from a log that nothing empties is a promise the endpoint cannot keep."""
        p = self.publisher
        if p is None or p.wal is None:
            return None
        if p.wal.full():
            return f"the write-ahead log is full ({p.wal.describe_fill()})"
        return p.forwarding_problem()

    @property
    def producer(self) -> Producer | None:
        """The producer in use: the publisher's (a renewal replaces it there)."""
        return None if self.publisher is None else self.publisher.producer

    async def renew_producer(self) -> bool:
        """SIGHUP, as in the original: a new producer, whose client reads the certificate files again
        (rotated credentials), takes over once the old one has delivered what it was given; the old one is closed.
        False, with the old producer kept, when the new one cannot be made (e.g. a certificate file is missing)."""
        if self.publisher is None:
            return False
        try:
            new = self.bus.producer()
        except BusError as e:
            log.error("SIGHUP: keeping the current producer; a new one cannot be made: %s", e)
            return False
        old = await self.publisher.swap_producer(new)  # swaps run one at a time
        self.metrics.producer_renewals.inc()
        log.info("SIGHUP: a new producer took over (credentials read again)")
        await old.close()
        return True

    async def stop(self) -> None:
        for task in (self._probe, self._certificate_watch, self._credentials_watch):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception:  # a watcher that died must not keep the listeners and the log from closing
                    log.exception("%s had failed", task.get_name())
        if self._grpc is not None:
            await self._grpc.stop(SHUTDOWN_GRACE_S)
        if self._http is not None:
            await self._http.cleanup()
        if self.publisher is not None:
            await self.publisher.close()
            await self.publisher.producer.close()
        if self._health is not None:
            await self._health.stop()
