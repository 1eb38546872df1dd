"""Strimzi's stand-in: the part of Strimzi's Topic and User Operators the e2e tests need, done for real.

Strimzi's own operators cannot run here (their images are in no reachable registry). This stand-in does
exactly their job for the objects algorun's operator writes, against the test-bed broker:

- KafkaTopic: creates the topic (`spec.topicName`, else the object's name) with `spec.partitions` and
  `spec.config`, and sets `status.topicName` and the Ready condition, as the Topic Operator does. It never
  deletes a topic (the operator keeps topics when a pipeline goes; Strimzi only deletes on a KafkaTopic
  deletion, which algorun's operator does not make either).
- KafkaUser with `spec.authentication.type: scram-sha-512`: creates the SCRAM credential in the broker with a
  random password and a Secret named like the user in the user's namespace with the key `password` (and
  `sasl.jaas.config`), and sets `status.username`, `status.secret` and Ready, as the User Operator does.
  Authorization (`spec.authorization`) is not enforced: the test-bed broker runs no authorizer.

It polls the API server (every `interval` seconds) in a thread, in whichever `kafka.strimzi.io` version the
server serves, and records what it did in `log`, so a test can wait on it and say what happened.

Given Kafka's jars (`kafka_libs`) and a `workdir`, it also does the Cluster Operator's part for KafkaConnect and
KafkaConnector objects, with real Connect workers on the host (tests.support.strimzi_connect).
"""

from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.kafka import KafkaBroker
from tests.support.kube import KubeAPI
from tests.support.strimzi_connect import ConnectStandIn

GROUP = "kafka.strimzi.io"


def _ready(generation: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "status": {
            **extra,
            "observedGeneration": generation,
            "conditions": [{"type": "Ready", "status": "True", "reason": "StandIn", "message": "done by the stand-in"}],
        }
    }


@dataclass
class StrimziStandIn:
    api: KubeAPI
    broker: KafkaBroker
    listener: str = "PLAINTEXT"
    interval: float = 0.5
    kafka_libs: Path | None = None
    workdir: Path | None = None
    log: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connect: ConnectStandIn | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> StrimziStandIn:
        self._thread = threading.Thread(target=self._loop, name="strimzi-stand-in", daemon=True)
        self._thread.start()
        if self.kafka_libs is not None and self.workdir is not None:
            self.connect = ConnectStandIn(self.api, self.broker, self.kafka_libs, self.workdir, self.interval)
            self.connect.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.connect is not None:
            self.connect.stop()

    def version(self) -> str | None:
        """The preferred served version of kafka.strimzi.io, or None when no Strimzi CRD is installed."""
        status, group = self.api.request("GET", f"/apis/{GROUP}", timeout=10)
        if status != 200:
            return None
        return str(group["preferredVersion"]["version"])

    def _loop(self) -> None:
        from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

        admin = AdminClient(self.broker.client_config(self.listener))
        while not self._stop.wait(self.interval):
            try:
                version = self.version()
                if version is not None:
                    self._topics(admin, version)
                    self._users(admin, version)
            except Exception as exc:  # keep serving; a test that depends on it fails with the reason
                self.errors.append(repr(exc))

    def _pending(self, version: str, plural: str) -> list[dict[str, Any]]:
        status, body = self.api.request("GET", f"/apis/{GROUP}/{version}/{plural}", timeout=10)
        if status != 200:
            return []
        pending = []
        for obj in body.get("items", []):
            observed = (obj.get("status") or {}).get("observedGeneration")
            if observed != obj["metadata"].get("generation"):
                pending.append(obj)
        return pending

    def _set_status(self, version: str, plural: str, obj: dict[str, Any], patch: dict[str, Any]) -> None:
        meta = obj["metadata"]
        path = f"/apis/{GROUP}/{version}/namespaces/{meta['namespace']}/{plural}/{meta['name']}/status"
        status, body = self.api.request("PATCH", path, patch, content_type="application/merge-patch+json")
        if status != 200:
            raise RuntimeError(f"status of {plural}/{meta['name']}: HTTP {status}: {body}")

    def _topics(self, admin: Any, version: str) -> None:
        from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

        for obj in self._pending(version, "kafkatopics"):
            spec = obj.get("spec") or {}
            name = spec.get("topicName") or obj["metadata"]["name"]
            existing = admin.list_topics(timeout=10).topics
            if name not in existing:
                config = {k: str(v) for k, v in (spec.get("config") or {}).items()}
                topic = NewTopic(name, int(spec.get("partitions") or 1), 1, config=config)
                try:
                    admin.create_topics([topic])[name].result(30)
                except Exception as exc:
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
                self.log.append(f"created topic {name}")
            self._set_status(version, "kafkatopics", obj, _ready(obj["metadata"].get("generation"), topicName=name))

    def _users(self, admin: Any, version: str) -> None:
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        for obj in self._pending(version, "kafkausers"):
            meta = obj["metadata"]
            auth = ((obj.get("spec") or {}).get("authentication") or {}).get("type")
            if auth != "scram-sha-512":
                self.errors.append(f"KafkaUser {meta['name']}: authentication {auth!r} is not done by the stand-in")
                continue
            user = meta["name"]
            password = secrets.token_urlsafe(18)
            info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
            futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, password.encode())])
            futures[user].result(30)
            jaas = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{user}" password="{password}";'
            )
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": user, "namespace": meta["namespace"], "labels": {"strimzi.io/kind": "KafkaUser"}},
                "data": {
                    "password": base64.b64encode(password.encode()).decode(),
                    "sasl.jaas.config": base64.b64encode(jaas.encode()).decode(),
                },
            }
            path = f"/api/v1/namespaces/{meta['namespace']}/secrets"
            status, body = self.api.request("POST", path, secret)
            if status == 409:
                status, body = self.api.request("PUT", f"{path}/{user}", secret)
            if status not in (200, 201):
                raise RuntimeError(f"secret of KafkaUser {user}: HTTP {status}: {body}")
            self.log.append(f"created SCRAM user {user}")
            patch = _ready(meta.get("generation"), username=user, secret=user)
            self._set_status(version, "kafkausers", obj, patch)
