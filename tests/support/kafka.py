"""One real Apache Kafka broker (KRaft, combined broker+controller) with every listener kind the operator uses.

Listeners, each on its own free port on 127.0.0.1:
- PLAINTEXT: no security; also the inter-broker listener and the one Kafka Connect uses.
- SSL: TLS with client certificates required (mTLS). The broker's CA, server and client certificates are
  generated per session (tests.support.certs); a second, untrusted CA exists to prove rejection.
- TLS: TLS (security protocol SSL) server-authenticated only: a client needs the CA and nothing else (the
  chart's `kafka.tls.enabled` without an auth type).
- SASL_SSL: TLS (server-authenticated only) with SCRAM-SHA-512. The SCRAM user is created after start
  through the admin API (AlterUserScramCredentials), as an operator would.
- SASL_PLAINTEXT: SASL PLAIN, users declared in the listener's JAAS config (PLAIN has no admin API).
- CONTROLLER: KRaft's own listener; not for clients.

No authorizer is configured: authentication is real, authorization is not (every authenticated principal may
do anything). Auto topic creation is on, but tests should create their topics or use `unique_topic()` names
so that runs never interfere.
"""

from __future__ import annotations

import base64
import secrets
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.certs import CertificateAuthority
from tests.support.procs import ManagedProcess, free_ports, wait_for

LISTENERS = ("PLAINTEXT", "SSL", "TLS", "SASL_SSL", "SASL_PLAINTEXT")
_PROTOCOL = {"TLS": "SSL"}  # a listener's security protocol, where it is not the listener's name
JVM_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    # C1 only: the broker starts noticeably faster and tests never run long enough for C2 to pay off.
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
"""


def java_command(libs: Path, main_class: str, workdir: Path, *args: str) -> list[str]:
    """A `java` command line running `main_class` from the test bed's Kafka jars, logging with log4j2."""
    log4j = workdir / "log4j2.properties"
    if not log4j.exists():
        log4j.write_text(_LOG4J2)
    return [
        "java",
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


@dataclass
class KafkaCredentials:
    """Users the broker knows. Passwords are random per session."""

    scram_user: str = "algorun-scram"
    scram_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    plain_user: str = "algorun-plain"
    plain_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))


@dataclass
class KafkaBroker:
    """A running broker: where each listener is, the TLS material, and client config helpers."""

    workdir: Path
    ports: dict[str, int]
    credentials: KafkaCredentials
    ca_file: Path
    client_cert: Path
    client_key: Path
    untrusted_client_cert: Path
    untrusted_client_key: Path
    untrusted_ca_file: Path
    host: str = "127.0.0.1"
    process: ManagedProcess | None = None
    start_seconds: float = 0.0
    _topic_seq: int = 0

    def bootstrap(self, listener: str = "PLAINTEXT") -> str:
        return f"{self.host}:{self.ports[listener]}"

    @property
    def bootstrap_servers(self) -> dict[str, str]:
        """Bootstrap address per listener name."""
        return {name: self.bootstrap(name) for name in LISTENERS}

    def client_config(self, listener: str = "PLAINTEXT", **overrides: Any) -> dict[str, Any]:
        """A confluent-kafka (librdkafka) config dict that connects through `listener` as a valid user."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap(listener)}
        if listener == "SSL":
            conf |= {
                "security.protocol": "SSL",
                "ssl.ca.location": str(self.ca_file),
                "ssl.certificate.location": str(self.client_cert),
                "ssl.key.location": str(self.client_key),
            }
        elif listener == "TLS":
            conf |= {"security.protocol": "SSL", "ssl.ca.location": str(self.ca_file)}
        elif listener == "SASL_SSL":
            conf |= {
                "security.protocol": "SASL_SSL",
                "ssl.ca.location": str(self.ca_file),
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": self.credentials.scram_user,
                "sasl.password": self.credentials.scram_password,
            }
        elif listener == "SASL_PLAINTEXT":
            conf |= {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN",
                "sasl.username": self.credentials.plain_user,
                "sasl.password": self.credentials.plain_password,
            }
        elif listener != "PLAINTEXT":
            raise ValueError(f"unknown listener {listener!r}; known: {', '.join(LISTENERS)}")
        conf.update(overrides)
        return conf

    def unique_topic(self, prefix: str = "t") -> str:
        """A topic name no other test (in this or any earlier session on this broker) uses."""
        self._topic_seq += 1
        return f"{prefix}-{self._topic_seq}-{uuid.uuid4().hex[:10]}"

    def create_topic(self, name: str, partitions: int = 1, timeout: float = 30.0) -> None:
        """Create a topic through the PLAINTEXT listener and wait until it exists."""
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient(self.client_config("PLAINTEXT"))
        futures = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=timeout)
        futures[name].result(timeout)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def _server_properties(broker: KafkaBroker, controller_port: int, server_pem: Path) -> str:
    p = broker.ports
    h = broker.host
    creds = broker.credentials
    listeners = ",".join(f"{name}://{h}:{p[name]}" for name in LISTENERS)
    jaas_plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{creds.plain_user}" password="{creds.plain_password}" '
        f'user_{creds.plain_user}="{creds.plain_password}";'
    )
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{h}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listeners": f"{listeners},CONTROLLER://{h}:{controller_port}",
        "advertised.listeners": listeners,
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": ",".join(f"{n}:{_PROTOCOL.get(n, n)}" for n in LISTENERS)
        + ",CONTROLLER:PLAINTEXT",
        "log.dirs": str(broker.workdir / "data"),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "5",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        # TLS: PEM files, no JKS. The truststore is the session CA, used for client certificates.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(server_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(broker.ca_file),
        "ssl.client.auth": "none",
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.tls.ssl.client.auth": "none",
        # SASL
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas_plain,
        # Small and quick: one node, short timeouts, little retained.
        "log.segment.bytes": str(16 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _listener_ready(broker: KafkaBroker, listener: str, timeout: float, proc: ManagedProcess) -> None:
    """Wait until a client authenticates on `listener` and sees the broker in metadata.

    One AdminClient per listener (librdkafka clients keep reconnecting until garbage-collected, so creating
    one per poll would flood the log); its own log output is silenced because refusals are expected here.
    """
    from confluent_kafka.admin import AdminClient

    wait_for(
        lambda: _port_open(broker.host, broker.ports[listener]), timeout=timeout, what=f"{listener} port", proc=proc
    )
    admin = AdminClient(broker.client_config(listener, log_level=0))
    wait_for(
        lambda: bool(admin.list_topics(timeout=2).brokers),
        timeout=timeout,
        what=f"metadata through the {listener} listener",
        proc=proc,
    )


def _create_scram_user(broker: KafkaBroker) -> None:
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(broker.client_config("PLAINTEXT"))
    creds = broker.credentials
    upsert = UserScramCredentialUpsertion(
        creds.scram_user,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
        creds.scram_password.encode(),
    )
    for fut in admin.alter_user_scram_credentials([upsert]).values():
        fut.result(30)


def start_kafka(libs: Path, workdir: Path, *, timeout: float = 90.0, host: str = "127.0.0.1") -> KafkaBroker:
    """Generate certificates and config, format storage, start the broker, create the SCRAM user.

    Every listener is on `host` (127.0.0.1, or an address a cluster's pods reach). Returns once a client can
    use every listener. Raises procs.StartError with the log tail otherwise.
    """
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    tls = workdir / "tls"
    ca = CertificateAuthority("algorun-testbed-kafka-ca")
    ca_file = ca.write_ca(tls / "ca.crt")
    server_pem = ca.issue(
        "localhost",
        dns_names=("localhost",),
        ip_addresses=tuple(dict.fromkeys(("127.0.0.1", host))),
        server=True,
        client=True,
    ).write_combined(tls / "server.pem")
    client_cert, client_key = ca.issue("algorun-testbed-client", client=True).write(tls, "client")
    rogue = CertificateAuthority("algorun-testbed-untrusted-ca")
    untrusted_cert, untrusted_key = rogue.issue("algorun-testbed-intruder", client=True).write(tls, "untrusted")
    untrusted_ca_file = rogue.write_ca(tls / "untrusted-ca.crt")

    *listener_ports, controller_port = free_ports(len(LISTENERS) + 1)
    broker = KafkaBroker(
        workdir=workdir,
        ports=dict(zip(LISTENERS, listener_ports, strict=True)),
        credentials=KafkaCredentials(),
        ca_file=ca_file,
        client_cert=client_cert,
        client_key=client_key,
        untrusted_client_cert=untrusted_cert,
        untrusted_client_key=untrusted_key,
        untrusted_ca_file=untrusted_ca_file,
        host=host,
    )
    config = workdir / "server.properties"
    config.write_text(_server_properties(broker, controller_port, server_pem))

    cluster_id = _cluster_id()
    fmt = ManagedProcess(
        "kafka-storage-format",
        java_command(libs, "kafka.tools.StorageTool", workdir, "format", "-t", cluster_id, "-c", str(config)),
        workdir / "format.log",
    )
    try:
        rc = fmt.popen.wait(timeout)
    finally:
        fmt.stop()
    if rc != 0:
        raise fmt.failure("formatting KRaft storage failed")

    proc = ManagedProcess("kafka", java_command(libs, "kafka.Kafka", workdir, str(config)), workdir / "kafka.log")
    broker.process = proc
    try:
        _listener_ready(broker, "PLAINTEXT", timeout, proc)
        try:
            _create_scram_user(broker)
        except Exception as exc:
            raise proc.failure(f"creating the SCRAM user through the admin API failed: {exc}") from exc
        for listener in ("SSL", "SASL_SSL", "SASL_PLAINTEXT"):
            _listener_ready(broker, listener, 30, proc)
    except BaseException:
        proc.stop()
        raise
    broker.start_seconds = time.monotonic() - started
    return broker


def _cluster_id() -> str:
    """A KRaft cluster id (16 random bytes, URL-safe base64) that does not start with "-": the storage tool
    would read one that does as an option (about 1 format in 64 failed that way)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id
