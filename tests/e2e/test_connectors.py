"""The data-connector example on the cluster: the operator writes a KafkaConnect and a KafkaConnector per data
connector, Strimzi's stand-in runs them as real Connect workers (tests.support.strimzi_connect; Strimzi's own
images are in no reachable registry), and a file's lines go source connector -> python algo pod -> sink
connector. The file paths are the test's own (the stand-in's workers run on this machine).

What it proves about the operator: the connector objects it writes are ones Kafka Connect accepts (class,
tasksMax, config with the topics and converters), the Connect cluster's group and storage topics work, the
pipeline's status counts the Connect clusters, and the records arrive as the text the algo wrote (no JSON
envelope from the worker's default converter).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.e2e import Operator, Receiver, eventually
from tests.support.strimzi import StrimziStandIn

LINES = ["  Hello World  ", "ALGORUN", "  Mixed Case Line"]


def _apply(operator: Operator, receiver: Receiver, source: Path, sink: Path, prefix: str) -> tuple[str, str]:
    """The example with its files at `source` and `sink` (the stand-in's workers run on this machine, so they
    reach the broker by its address), applied in a new namespace; (namespace, name)."""
    pd = operator.prepare("data-connector", receiver, listener="PLAINTEXT")
    files = {"/data/in.txt": str(source), "/data/out.txt": str(sink)}
    for connector in pd["spec"]["dataConnectors"]:
        connector["options"]["file"] = files[connector["options"]["file"]]
    namespace = operator.api.create_namespace(prefix)
    operator.apply(pd, namespace)
    return namespace, str(pd["metadata"]["name"])


def test_data_connector_example_moves_a_file_through_the_pipeline(
    operator: Operator, strimzi: StrimziStandIn, receiver: Receiver, tmp_path: Path
) -> None:
    source, sink = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("\n".join(LINES) + "\n")
    namespace, name = _apply(operator, receiver, source, sink, "e2e-connect")
    try:

        def seen() -> str:
            connect = strimzi.connect
            assert connect is not None
            return f"{operator.describe(namespace, name)}\nstand-in: {connect.log}\nerrors: {connect.errors}"

        deployed = operator.wait_deployed(namespace, name)
        kinds = sorted(c["componentType"] for c in deployed["status"]["componentStatuses"])
        assert kinds.count("DataConnector") == 2, kinds

        eventually(
            lambda: sink.exists() and len(sink.read_text().splitlines()) >= len(LINES),
            120,
            "the sink connector's file to have every line",
            seen,
        )
        # The same lines `algorun run` gives locally on a Connect worker
        # (tests/integration/local/test_examples.py::test_data_connectors_on_kafka_connect).
        assert sink.read_text().splitlines() == [line.strip().lower() for line in LINES]

        version = strimzi.version()

        def states() -> dict[str, list[str]]:
            _, connectors = operator.api.request(
                "GET", f"/apis/kafka.strimzi.io/{version}/namespaces/{namespace}/kafkaconnectors"
            )
            return {
                c["metadata"]["name"]: [x["type"] for x in (c.get("status") or {}).get("conditions") or []]
                for c in connectors["items"]
            }

        # Both KafkaConnectors report Ready (their tasks RUNNING), as Strimzi reports them.
        eventually(
            lambda: len(states()) == 2 and all(s == ["Ready"] for s in states().values()),
            60,
            "both KafkaConnectors Ready",
            lambda: json.dumps(states()),
        )
    finally:
        operator.delete_namespace(namespace)


def test_a_connector_whose_task_fails_shows_in_the_pipeline_status(
    operator: Operator, strimzi: StrimziStandIn, receiver: Receiver, tmp_path: Path
) -> None:
    """The sink is told to write where no file can be created: its Connect cluster is Ready, its task FAILED.
    The PipelineDeployment says Error, with the data connector, the reason and the task's exception."""
    source = tmp_path / "in.txt"
    source.write_text("one line\n")
    namespace, name = _apply(operator, receiver, source, tmp_path / "no-such-folder" / "out.txt", "e2e-connect-fail")
    try:

        def failed() -> dict[str, Any] | None:
            status = operator.pipeline(namespace, name).get("status") or {}
            broken = [c for c in status.get("componentStatuses") or [] if c.get("reason") == "ConnectorFailed"]
            return broken[0] if status.get("status") == "Error" and broken else None

        component = eventually(
            failed, 240, "the pipeline in Error with the sink's failed task", lambda: operator.describe(namespace, name)
        )
        assert component["componentType"] == "DataConnector" and component["name"] == "file-sink", component
        assert "task 0 FAILED" in component["message"] and "out.txt" in component["message"], component
    finally:
        operator.delete_namespace(namespace)
