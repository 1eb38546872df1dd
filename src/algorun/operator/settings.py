"""The operator's settings (how it runs: what to watch, which images, how to reach Kafka and storage), read from
the environment variables the Helm chart sets, as `algorun.settings` defines the word.

The names are the original operator's (`WATCH_NAMESPACE`, `NOTIF_URL`, `ALGORUNNER_IMAGE`, `KAFKA_*`,
`STORAGE_*`) so the chart's values keep their meaning; a few settings are algorun's own (`ENDPOINT_ROUTING`,
`GATEWAY_*`, `ENDPOINT_TLS_ISSUER*`, `RESYNC_SECONDS`, `KAFKA_TOPIC_DELETION`).

- A per-deployment image (`spec.endpoint.image`, `spec.eventHook.image`, `algos[].algoRunnerImage`) overrides the
  operator-wide default, as the chart's values promise.
- The Kafka auth secret name template also names the KafkaUser, so the secret Strimzi creates for the user is
  the secret the pods mount, whatever the Kafka cluster is called.

Where these differ from Algo.Run's operator: docs/compat.md.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from algorun import __version__
from algorun.api.enums import ImagePullPolicy, KafkaAuthType
from algorun.settings import ComponentSettings

DEFAULT_IMAGE = f"algorun/algorun:{__version__}"


def resolve_template(template: str, owner: str, name: str, cluster: str = "") -> str:
    """Substitute `{deploymentowner}`, `{deploymentname}` and `{kafkaclustername}` (any case), lower-cased."""
    result = template
    for key, value in (("deploymentowner", owner), ("deploymentname", name), ("kafkaclustername", cluster)):
        result = re.sub(r"\{" + key + r"\}", value, result, flags=re.IGNORECASE)
    return result.lower()


class Routing:
    """The values of ENDPOINT_ROUTING."""

    AMBASSADOR = "ambassador"
    GATEWAY = "gateway"
    NONE = "none"


class OperatorOptions(ComponentSettings):
    """One model for every operator setting; `OperatorOptions()` reads the process environment, and
    `OperatorOptions.from_env()` also turns a value that cannot work into a SettingsError naming its variable.

    The variables have no prefix (the chart's names); an empty one is a value, as the chart sets some to ''."""

    model_config = SettingsConfigDict(env_ignore_empty=False)

    watch_namespace: str = Field(default="", description="'' watches all namespaces; else a comma list")
    notif_url: str = Field(default="", description="Base URL of notifications; '' disables them")
    notif_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Signs notifications (X-Algorun-Signature, as webhooks); '' leaves them unsigned",
    )
    algorunner_image: str = DEFAULT_IMAGE
    endpoint_image: str = DEFAULT_IMAGE
    hook_image: str = DEFAULT_IMAGE
    algorunner_image_pull_policy: ImagePullPolicy | None = Field(
        default=None, description="Pull policy of ALGORUNNER_IMAGE (not of images a pipeline names itself)"
    )
    endpoint_image_pull_policy: ImagePullPolicy | None = None
    hook_image_pull_policy: ImagePullPolicy | None = None
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics on metrics_port")
    metrics_port: int = 8383
    liveness_endpoint: str = Field(
        default="http://0.0.0.0:8080/healthz", description="kopf's liveness probe URL; '' turns it off"
    )

    kafka_operator_type: Literal["strimzi"] = Field(
        default="strimzi", description="The Kafka operator whose resources are rendered; only Strimzi is supported"
    )
    kafka_namespace: str = "kafka"
    kafka_cluster_name: str = "kafka"
    kafka_tls: bool = False
    kafka_tls_ca_secretname: str = "kafka-cluster-ca-cert"
    kafka_tls_ca_key: str = "ca.crt"
    kafka_auth_type: KafkaAuthType = KafkaAuthType.NONE
    kafka_auth_secretname: str = Field(
        default="", description="Template of the user secret (and KafkaUser) name; default kafka-{owner}-{name}"
    )
    kafka_auth_certificate_key: str = "user.crt"
    kafka_auth_key_secret_key: str = "user.key"
    kafka_auth_username: str = Field(default="", description="Username for `plain` auth (no KafkaUser)")
    kafka_auth_password_secret_key: str = "password"
    kafka_topic_deletion: bool = Field(
        default=False, description="Delete KafkaTopics with their pipeline for every pipeline (opt-in)"
    )

    storage_enabled: bool | None = Field(
        default=None, description="Default: on when STORAGE_SECRET_NAME or STORAGE_BUCKET_NAME is set"
    )
    storage_secret_name: str = ""
    storage_secret_key: str = "connection-string"
    storage_region: str = "us-east-1"
    storage_bucket_name: str = ""

    endpoint_routing: str = Field(default="ambassador", description="ambassador, gateway or none")
    ambassador_hostname: str = "*"
    gateway_name: str = ""
    gateway_namespace: str = ""
    endpoint_tls_issuer: str = Field(
        default="",
        description="The cert-manager issuer of the endpoints' serving certificates; '' serves plain HTTP and gRPC",
    )
    endpoint_tls_issuer_kind: str = Field(default="ClusterIssuer", description="Issuer, ClusterIssuer or external")
    endpoint_tls_issuer_group: str = "cert-manager.io"

    resync_seconds: float = Field(default=300.0, gt=0)
    field_manager: str = "algorun-operator"

    @field_validator("kafka_auth_type", mode="before")
    @classmethod
    def _auth_type(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return KafkaAuthType.NONE
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("kafka_tls_ca_secretname")
    @classmethod
    def _ca_secret(cls, value: str, info: ValidationInfo) -> str:
        """`{kafkaClusterName}` in the CA secret's name is the cluster's (Strimzi names it
        `<cluster>-cluster-ca-cert`), so renaming the cluster does not leave the CA pointing at the old one."""
        return resolve_template(value, "", "", str(info.data.get("kafka_cluster_name", "")))

    @field_validator("endpoint_routing")
    @classmethod
    def _routing(cls, value: str) -> str:
        value = value.strip().lower() or Routing.AMBASSADOR
        if value not in (Routing.AMBASSADOR, Routing.GATEWAY, Routing.NONE):
            raise ValueError("ENDPOINT_ROUTING must be ambassador, gateway or none")
        return value

    @model_validator(mode="after")
    def _endpoint_tls_routing(self) -> OperatorOptions:
        """A Gateway reaches a TLS backend only through a BackendTLSPolicy, whose CA must be in a ConfigMap that
        cert-manager does not write: refused here rather than rendering routes that fail every request."""
        if self.endpoint_tls_issuer and self.endpoint_routing == Routing.GATEWAY:
            raise ValueError(
                "ENDPOINT_TLS_ISSUER (endpoints serving TLS) works with ENDPOINT_ROUTING ambassador or none, "
                "not gateway"
            )
        return self

    # ----- derived values --------------------------------------------------------------------------------

    @property
    def namespaces(self) -> list[str]:
        """The namespaces to watch; empty means the whole cluster."""
        return [n.strip() for n in self.watch_namespace.split(",") if n.strip()]

    @property
    def storage(self) -> bool:
        if self.storage_enabled is not None:
            return self.storage_enabled
        return bool(self.storage_secret_name or self.storage_bucket_name)

    @property
    def kafka_user_managed(self) -> bool:
        """Whether the operator creates a Strimzi KafkaUser (tls and scram-sha-512; `plain` users are external)."""
        return self.kafka_auth_type in (KafkaAuthType.TLS, KafkaAuthType.SCRAM_SHA_512)

    def kafka_user_name(self, owner: str, name: str) -> str:
        """The KafkaUser's name, which Strimzi also gives the user's secret in the Kafka namespace."""
        from algorun.api.naming import object_name

        if self.kafka_auth_secretname:
            return object_name(resolve_template(self.kafka_auth_secretname, owner, name, self.kafka_cluster_name))
        return object_name("kafka", owner, name)

    def kafka_user_secret_source(self, owner: str, name: str) -> str:
        """The secret with the client credentials, in the Kafka namespace."""
        if self.kafka_auth_type == KafkaAuthType.PLAIN:
            template = self.kafka_auth_secretname or "{kafkaclustername}-{deploymentowner}-{deploymentname}"
            return resolve_template(template, owner, name, self.kafka_cluster_name)
        return self.kafka_user_name(owner, name)

    def kafka_username(self, owner: str, name: str) -> str | None:
        if self.kafka_auth_type == KafkaAuthType.SCRAM_SHA_512:
            return self.kafka_user_name(owner, name)
        if self.kafka_auth_type == KafkaAuthType.PLAIN:
            return self.kafka_auth_username or None
        return None

    @property
    def default_kafka_brokers(self) -> str:
        """The Strimzi cluster's bootstrap Service (`{cluster}-kafka-bootstrap.{namespace}`), on the port of its
        default TLS (9093) or plain (9092) listener: the brokers of a pipeline that names none."""
        port = 9093 if self.kafka_tls else 9092
        return f"{self.kafka_cluster_name}-kafka-bootstrap.{self.kafka_namespace}:{port}"

    def storage_secret_candidates(self, owner: str, name: str) -> list[str]:
        """Storage secret names to look for in the deployment namespace, in order (the original's fallback)."""
        template = self.storage_secret_name or "storage-{deploymentowner}-{deploymentname}"
        first = resolve_template(template, owner, name)
        return [first] if first == "storage-global" else [first, "storage-global"]

    def bucket_name(self, owner: str, name: str) -> str:
        return resolve_template(self.storage_bucket_name or "{deploymentowner}-{deploymentname}", owner, name)
