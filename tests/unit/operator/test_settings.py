"""The operator's settings from the chart's environment variables: the notifier's URL and signing secret, the
Kafka operator type, endpoint TLS with the routing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from algorun.operator.notify import Notifier
from algorun.operator.settings import OperatorOptions


def test_notif_secret_signs_notifications() -> None:
    settings = OperatorOptions(notif_url="http://n.example/hooks", notif_secret="s3cret")  # type: ignore[arg-type]
    notifier = Notifier.from_settings(settings)
    assert notifier.base_url == "http://n.example/hooks" and notifier.secret == b"s3cret"
    assert "s3cret" not in repr(settings)  # a secret never reaches a log line through the settings


def test_without_a_secret_notifications_are_unsigned() -> None:
    assert Notifier.from_settings(OperatorOptions(notif_url="http://n.example/hooks")).secret is None


def test_only_the_strimzi_kafka_operator_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's kafka.operatorType reaches the operator as KAFKA_OPERATOR_TYPE: anything but strimzi (whose
    resources the operator renders) is refused at startup, naming the setting, instead of being ignored."""
    monkeypatch.setenv("KAFKA_OPERATOR_TYPE", "strimzi")
    assert OperatorOptions().kafka_operator_type == "strimzi"
    monkeypatch.setenv("KAFKA_OPERATOR_TYPE", "confluent")
    with pytest.raises(ValidationError, match="kafka_operator_type"):
        OperatorOptions()


def test_the_kafka_ca_secret_name_may_follow_the_cluster_name() -> None:
    templated = OperatorOptions(kafka_cluster_name="east", kafka_tls_ca_secretname="{kafkaClusterName}-cluster-ca-cert")
    assert templated.kafka_tls_ca_secretname == "east-cluster-ca-cert"
    assert OperatorOptions(kafka_cluster_name="east").kafka_tls_ca_secretname == "kafka-cluster-ca-cert"  # as given


def test_endpoint_tls_is_refused_with_gateway_routing() -> None:
    with pytest.raises(ValidationError, match=r"ENDPOINT_TLS_ISSUER .* not gateway"):
        OperatorOptions.model_validate(
            {"endpoint_tls_issuer": "ca", "endpoint_routing": "gateway", "gateway_name": "public"}
        )
    settings = OperatorOptions.model_validate({"endpoint_tls_issuer": "ca", "endpoint_tls_issuer_kind": "Issuer"})
    assert (settings.endpoint_tls_issuer, settings.endpoint_tls_issuer_kind) == ("ca", "Issuer")
