"""Strimzi's stand-in, Cluster Operator part: KafkaConnect and KafkaConnector objects, done with real workers.

Strimzi's Cluster Operator runs a Kafka Connect cluster as pods for each KafkaConnect and, when the object is
annotated `strimzi.io/use-connector-resources: "true"`, creates each KafkaConnector (labelled
`strimzi.io/cluster: <connect name>`) on that cluster through the Connect REST API. Its images are in no
reachable registry, so this stand-in runs the Connect cluster as one real distributed worker on the host (Kafka's
own ConnectDistributed from the test bed's Kafka jars), with the configuration Strimzi would give it:

- `bootstrapServers`, and the group id and internal topics from `spec.groupId`/`spec.*StorageTopic` (v1) or
  `spec.config` (v1beta2); the rest of `spec.config` except the options Strimzi reserves (listeners, REST,
  security, plugin path);
- Strimzi's defaults where the spec is silent: `group.id` `connect-cluster`, internal topics `connect-cluster-*`,
  and JSON converters for keys and values (`org.apache.kafka.connect.json.JsonConverter`, schemas enabled), so a
  connector that does not name its converters sees what it would see under Strimzi;
- a changed spec restarts the worker (Strimzi rolls the pods); a deleted KafkaConnect stops it.

KafkaConnector: `spec.class`, `spec.tasksMax` and `spec.config` are put on the worker (`PUT
/connectors/{name}/config`); a deleted KafkaConnector's connector is deleted. Statuses are written as Strimzi
writes them: KafkaConnect `url`, `replicas` and Ready; KafkaConnector `connectorStatus` (the REST status) and
Ready only when the connector and all its tasks are RUNNING, else NotReady with the failed task's trace.

Not done: TLS and authentication to the broker (`spec.tls`, `spec.authentication`: such a KafkaConnect gets
NotReady with the reason), the connector image (the worker has Kafka's own connectors only), pod templates.
File paths in connector options are paths on the host.
"""

from __future__ import annotations

import threading
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.connect import KafkaConnect, start_connect
from tests.support.kafka import KafkaBroker
from tests.support.kube import KubeAPI

GROUP = "kafka.strimzi.io"
USE_CONNECTOR_RESOURCES = "strimzi.io/use-connector-resources"
CLUSTER_LABEL = "strimzi.io/cluster"
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
# Strimzi fills these in when KafkaConnect's config does not name them.
STRIMZI_DEFAULTS = {
    "group.id": "connect-cluster",
    "offset.storage.topic": "connect-cluster-offsets",
    "config.storage.topic": "connect-cluster-configs",
    "status.storage.topic": "connect-cluster-status",
    "key.converter": JSON_CONVERTER,
    "value.converter": JSON_CONVERTER,
}
# v1's own fields for what v1beta2 keeps in `config`.
V1_FIELDS = {
    "groupId": "group.id",
    "offsetStorageTopic": "offset.storage.topic",
    "configStorageTopic": "config.storage.topic",
    "statusStorageTopic": "status.storage.topic",
}
# Options Strimzi manages itself and ignores in `spec.config`.
RESERVED_PREFIXES = ("bootstrap.servers", "listeners", "rest.", "plugin.path", "ssl.", "sasl.", "security.")


def worker_config(spec: dict[str, Any]) -> dict[str, str]:
    """The worker properties Strimzi would derive from a KafkaConnect spec (pure; no security)."""
    config = {
        str(k): str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in (spec.get("config") or {}).items()
        if not str(k).startswith(RESERVED_PREFIXES)
    }
    for spec_field, key in V1_FIELDS.items():
        if spec.get(spec_field):
            config[key] = str(spec[spec_field])
    return {**STRIMZI_DEFAULTS, **config, "bootstrap.servers": str(spec.get("bootstrapServers") or "")}


def _condition(ready: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": "Ready" if ready else "NotReady", "status": "True", "reason": reason, "message": message}


@dataclass
class _Worker:
    connect: KafkaConnect
    generation: int
    connector_resources: bool  # the KafkaConnect's `strimzi.io/use-connector-resources` annotation is "true"
    connectors: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> the config put on the worker


@dataclass
class ConnectStandIn:
    """Polls KafkaConnect and KafkaConnector objects (every `interval` seconds, all namespaces) in a thread of its
    own (a worker takes seconds to start) and keeps one worker per KafkaConnect. `log` says what it did."""

    api: KubeAPI
    broker: KafkaBroker
    libs: Path
    workdir: Path
    interval: float = 0.5
    log: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    workers: dict[tuple[str, str], _Worker] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ConnectStandIn:
        self._thread = threading.Thread(target=self._loop, name="strimzi-connect-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
        for worker in self.workers.values():
            worker.connect.stop()
        self.workers.clear()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                status, group = self.api.request("GET", f"/apis/{GROUP}", timeout=10)
                if status == 200:
                    version = str(group["preferredVersion"]["version"])
                    self._clusters(version)
                    self._connectors(version)
            except Exception as exc:  # keep serving; a test that depends on it fails with the reason
                self.errors.append(repr(exc))

    def _list(self, version: str, plural: str) -> list[dict[str, Any]]:
        status, body = self.api.request("GET", f"/apis/{GROUP}/{version}/{plural}", timeout=10)
        return list(body.get("items", [])) if status == 200 else []

    def _set_status(self, version: str, plural: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
        """Write `status` unless the object already has it (a status write bumps resourceVersion and wakes every
        watcher, so an unchanged one is not rewritten)."""
        meta = obj["metadata"]
        status = {**status, "observedGeneration": meta.get("generation")}
        if obj.get("status") == status:
            return
        path = f"/apis/{GROUP}/{version}/namespaces/{meta['namespace']}/{plural}/{meta['name']}/status"
        code, body = self.api.request("PUT", path, {**obj, "status": status})
        if code not in (200, 409):  # 409: changed meanwhile; the next round writes it
            raise RuntimeError(f"status of {plural}/{meta['name']}: HTTP {code}: {body}")

    def _clusters(self, version: str) -> None:
        live = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in self._list(version, "kafkaconnects")}
        for key in set(self.workers) - set(live):
            self.workers.pop(key).connect.stop()
            self.log.append(f"stopped the Connect worker of KafkaConnect {key[0]}/{key[1]}")
        for key, obj in live.items():
            spec, generation = obj.get("spec") or {}, int(obj["metadata"].get("generation") or 0)
            if spec.get("tls") or spec.get("authentication"):
                reason = "the stand-in connects to the broker without TLS or authentication"
                self._set_status(version, "kafkaconnects", obj, {"conditions": [_condition(False, "StandIn", reason)]})
                continue
            worker = self.workers.get(key)
            if worker is None or worker.generation != generation:
                if worker is not None:
                    self.workers.pop(key).connect.stop()
                workdir = self.workdir / f"{key[0]}-{key[1]}-{generation}"
                connect = start_connect(self.libs, workdir, self.broker, config=worker_config(spec))
                annotations = obj["metadata"].get("annotations") or {}
                managed = annotations.get(USE_CONNECTOR_RESOURCES) == "true"
                worker = self.workers[key] = _Worker(connect, generation, managed)
                self.log.append(f"started a Connect worker for KafkaConnect {key[0]}/{key[1]} at {connect.url}")
            status = {
                "conditions": [_condition(True, "StandIn", "a Connect worker on the host")],
                "url": worker.connect.url,
                "replicas": int(spec.get("replicas") or 1),
            }
            self._set_status(version, "kafkaconnects", obj, status)

    def _connectors(self, version: str) -> None:
        wanted: dict[tuple[str, str], set[str]] = {key: set() for key in self.workers}
        for obj in self._list(version, "kafkaconnectors"):
            meta, spec = obj["metadata"], obj.get("spec") or {}
            key = (meta["namespace"], (meta.get("labels") or {}).get(CLUSTER_LABEL, ""))
            worker = self.workers.get(key)
            if worker is None or not worker.connector_resources:
                message = (
                    f"KafkaConnect {key[1]!r} is not running in namespace {key[0]}"
                    if worker is None
                    else f'KafkaConnect {key[1]!r} is not annotated {USE_CONNECTOR_RESOURCES}: "true"'
                )
                self._set_status(
                    version, "kafkaconnectors", obj, {"conditions": [_condition(False, "NoCluster", message)]}
                )
                continue
            wanted[key].add(meta["name"])
            config = {str(k): str(v) for k, v in (spec.get("config") or {}).items()}
            config["connector.class"] = str(spec.get("class") or "")
            config["tasks.max"] = str(spec.get("tasksMax") or 1)
            if worker.connectors.get(meta["name"]) != config:
                worker.connect.request("PUT", f"/connectors/{meta['name']}/config", config)
                worker.connectors[meta["name"]] = config
                self.log.append(f"put connector {meta['name']} on {worker.connect.url}")
            self._set_status(version, "kafkaconnectors", obj, _connector_status(worker.connect, meta["name"], config))
        for key, names in wanted.items():
            worker = self.workers[key]
            for name in set(worker.connectors) - names:
                try:
                    worker.connect.request("DELETE", f"/connectors/{name}")
                except urllib.error.HTTPError as exc:
                    if exc.code != 404:
                        raise
                del worker.connectors[name]
                self.log.append(f"deleted connector {name} from {worker.connect.url}")


def _connector_status(connect: KafkaConnect, name: str, config: dict[str, str]) -> dict[str, Any]:
    """A KafkaConnector's status from the worker's REST status, as Strimzi reports it."""
    try:
        rest = connect.request("GET", f"/connectors/{name}/status")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        return {"conditions": [_condition(False, "Pending", "the connector is being created")]}
    tasks = rest.get("tasks") or []
    failed = [t for t in tasks if t.get("state") == "FAILED"]
    running = (
        rest.get("connector", {}).get("state") == "RUNNING"
        and tasks
        and all(t.get("state") == "RUNNING" for t in tasks)
    )
    if failed:
        condition = _condition(False, "TaskFailed", str(failed[0].get("trace") or "")[:2000])
    elif running:
        condition = _condition(True, "StandIn", "the connector and its tasks are running")
    else:
        condition = _condition(False, "Pending", f"connector state {rest.get('connector', {}).get('state')}")
    return {
        "conditions": [condition],
        "connectorStatus": rest,
        "tasksMax": int(config.get("tasks.max", "1")),
    }
