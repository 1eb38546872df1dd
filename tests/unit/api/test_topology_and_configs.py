"""The resolved view every component reads: default topics, retry plans, and the component configs."""

from __future__ import annotations

from algorun.api import check_text, load_pipeline
from algorun.api.configs import BYTES_CONVERTER, endpoint_config, hook_config, runner_config
from algorun.api.topology import build_topology
from tests.support.paths import EXAMPLES


def test_default_topics_for_piped_outputs_without_a_declaration() -> None:
    _, topology = load_pipeline([EXAMPLES / "text-transform" / "pipeline.yaml"])
    assert topology.topics["Endpoint|text"].name == "algorun.demo.text-transform.endpoint.text"
    assert topology.topics["demo/uppercase:1[1]|upper"].name == "algorun.demo.text-transform.uppercase.1.upper"
    assert set(topology.hook_inputs()) == {"results"}
    assert len(topology.hook_inputs()["results"]) == 2


def test_retry_topics_per_backoff_and_dead_letter_suffix() -> None:
    _, topology = load_pipeline([EXAMPLES / "retry-dead-letter" / "pipeline.yaml"])
    plan = topology.retry_plan(topology.algos[0])
    assert plan.enabled
    assert plan.retry_topics == {
        "500ms": "algorun.shop.payments.charge.1.retry.500ms",
        "2s": "algorun.shop.payments.charge.1.retry.2s",
    }
    assert plan.dead_letter_topic == "algorun.shop.payments.charge.1.failed"
    names = topology.all_topic_names()
    assert "algorun.shop.payments.hook.dlq" in names and plan.dead_letter_topic in names


def test_fan_in_runner_config_lists_each_inputs_topics() -> None:
    _, topology = load_pipeline([EXAMPLES / "fan-out-fan-in" / "pipeline.yaml"])
    score = topology.algo("acme/score:3[1]")
    assert score is not None
    config = runner_config(topology, score)
    topics = {i.name: [t.topic for t in i.topics] for i in config.inputs}
    assert topics == {
        "valid": ["algorun.acme.orders.validate.1.valid"],
        "enriched": ["algorun.acme.orders.enrich.1.enriched"],
    }
    assert config.consumer_group == "algorun-acme-orders-acme-score-1"
    assert config.outputs[0].topic == "algorun.acme.orders.score.1.score"
    # validate's topic is auto-partitioned: 1 + max(1 replica) = 2, then + round(1.0) = 3
    assert topology.topics["acme/validate:1.0[1]|valid"].partitions == 3
    # the endpoint topic feeds validate (1) and enrich (autoscaled to 6): 1+1=2, 2+6=8, 8+4=12
    assert topology.topics["Endpoint|orders"].partitions == 12


def test_instance_parameters_override_the_algo_defaults() -> None:
    report = check_text(
        (EXAMPLES / "fan-out-fan-in" / "pipeline.yaml")
        .read_text()
        .replace(
            "      timeoutSeconds: 30\n",
            "      timeoutSeconds: 30\n      parameters: [{name: --threshold, value: '0.5'}]\n",
        )
    )
    assert report.ok, report.problems
    (pipeline,) = report.pipelines()
    topology = build_topology(pipeline.spec)
    score = topology.algo("acme/score:3[1]")
    assert score is not None
    params = {p.name: p.value for p in runner_config(topology, score).parameters}
    assert params == {"--threshold": "0.5"}


def test_endpoint_and_hook_configs() -> None:
    _, topology = load_pipeline([EXAMPLES / "text-transform" / "pipeline.yaml"])
    endpoint = endpoint_config(topology)
    assert [(p.name, p.topic) for p in endpoint.paths] == [("text", "algorun.demo.text-transform.endpoint.text")]
    hook = hook_config(topology)
    assert hook.web_hooks[0].headers == {"X-Demo": "text-transform"}
    assert hook.web_hooks[0].http_verb == "POST"
    assert hook.consumer_group == "algorun-demo-text-transform-hook"


def test_endpoint_kafka_brokers_and_params_reach_its_config() -> None:
    """The original endpoint read `kafka.params` (librdkafka settings); they are carried, not dropped."""
    text = (EXAMPLES / "text-transform" / "pipeline.yaml").read_text()
    text = text.replace(
        "  endpoint:\n",
        "  endpoint:\n    kafka: {brokers: [b1:9092, b2:9092], params: {linger.ms: '5', compression.type: lz4}}\n",
        1,
    )
    report = check_text(text)
    assert report.ok, report.problems
    config = endpoint_config(build_topology(report.pipelines()[0].spec))
    assert config.kafka.brokers == "b1:9092,b2:9092"
    assert config.kafka.params == {"linger.ms": "5", "compression.type": "lz4"}
    plain = endpoint_config(load_pipeline([EXAMPLES / "text-transform" / "pipeline.yaml"])[1])
    assert plain.kafka.brokers == "kafka-kafka-bootstrap.kafka:9093" and plain.kafka.params == {}


def test_executor_is_inferred_when_omitted() -> None:
    text = (EXAMPLES / "retry-dead-letter" / "pipeline.yaml").read_text().replace("        executor: http\n", "")
    report = check_text(text)
    assert report.ok
    topology = build_topology(report.pipelines()[0].spec)
    assert runner_config(topology, topology.algos[0]).executor.value == "http"


def test_missing_endpoint_and_event_hook_do_not_crash() -> None:
    report = check_text(
        """
apiVersion: algo.run/v1beta1
kind: PipelineDeployment
metadata: {name: minimal}
spec:
  deploymentOwner: o
  deploymentName: n
  endpoint: ~
  eventHook: ~
"""
    )
    assert report.ok, report.problems
    (pipeline,) = report.pipelines()
    assert pipeline.spec.endpoint.paths == [] and pipeline.spec.event_hook.web_hooks == []


def test_connector_configs_tell_sources_and_sinks_their_topics() -> None:
    from algorun.api.configs import connector_config, connector_name

    _, topology = load_pipeline([EXAMPLES / "data-connector" / "pipeline.yaml"])
    source, sink = topology.connectors
    text, raw = (
        "org.apache.kafka.connect.storage.StringConverter",
        "org.apache.kafka.connect.converters.ByteArrayConverter",
    )
    assert connector_config(topology, source) == {
        "file": "/data/in.txt",
        "topic": "algorun.ops.file-copy.file-source.1.lines",
        "key.converter": raw,
        "value.converter": text,
    }
    assert connector_config(topology, sink) == {
        "file": "/data/out.txt",
        "topics": "algorun.ops.file-copy.normalise.1.clean",
        "key.converter": raw,
        "value.converter": text,
    }
    assert connector_name(topology, source) == "file-copy-file-source-1"


def test_connectors_move_bytes_as_they_are_unless_their_options_name_a_converter() -> None:
    """Without a converter in its options, a connector gets the byte-array converter for keys and values, so
    the worker's default (Strimzi's JSON envelope) never wraps a pipeline's payloads."""
    from algorun.api.configs import connector_config

    _, topology = load_pipeline([EXAMPLES / "data-connector" / "pipeline.yaml"])
    for node in topology.connectors:
        assert node.spec is not None and node.spec.options is None
        node.deployment.options = {"file": "/data/x.txt"}
        config = connector_config(topology, node)
        assert config["key.converter"] == config["value.converter"] == BYTES_CONVERTER
