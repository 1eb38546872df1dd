"""Kafka and storage access for data-plane containers: env vars, secret volumes and mounts.

This is the internal contract between the operator and the runner, endpoint and hook runner (read by
`algorun.bus.settings.KafkaSettings.from_env`); docs/operator.md lists it:

    KAFKA_BROKERS                   spec.kafkaBrokers
    KAFKA_TLS                       "true" when KAFKA_TLS is on
    KAFKA_TLS_CA_LOCATION           /etc/ssl/certs/kafka-ca.crt       (the CA secret copy, mounted by subPath)
    KAFKA_AUTH_TYPE                 tls | scram-sha-512 | plain       (absent: no client auth)
    KAFKA_AUTH_TLS_USER_LOCATION    /etc/ssl/certs/kafka-user.crt     (tls auth)
    KAFKA_AUTH_TLS_KEY_LOCATION     /etc/ssl/certs/kafka-user.key     (tls auth)
    KAFKA_AUTH_USERNAME             scram: the KafkaUser name; plain: KAFKA_AUTH_USERNAME
    KAFKA_AUTH_PASSWORD             secretKeyRef on the user secret copy (scram, plain)
    MC_HOST_algorun                 secretKeyRef on the storage secret (S3 connection string, MinIO mc style)
    ALGORUN_STORAGE_BUCKET          the pipeline's bucket
    ALGORUN_STORAGE_REGION          STORAGE_REGION

Secrets are never mounted for an auth type that does not use them: SCRAM gets the password, not a TLS client
certificate.
"""

from __future__ import annotations

from typing import Any

from algorun.api.enums import KafkaAuthType
from algorun.operator.render.context import RenderContext
from algorun.operator.render.labels import suffixed

CA_PATH = "/etc/ssl/certs/kafka-ca.crt"
USER_CERT_PATH = "/etc/ssl/certs/kafka-user.crt"
USER_KEY_PATH = "/etc/ssl/certs/kafka-user.key"
CA_VOLUME = "kafka-ca-certs"
USER_VOLUME = "kafka-certs"


def ca_secret_name(ctx: RenderContext) -> str:
    """This deployment's copy of the Kafka cluster CA secret (one copy per deployment, owned by it)."""
    return suffixed("kafka-ca", ctx.owner, ctx.name)


def user_secret_name(ctx: RenderContext) -> str:
    """This deployment's copy of its Kafka user secret."""
    return suffixed("kafka-user", ctx.owner, ctx.name)


def kafka_env(ctx: RenderContext) -> list[dict[str, Any]]:
    s = ctx.settings
    env: list[dict[str, Any]] = [
        {"name": "INSTANCE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "KAFKA_BROKERS", "value": ctx.topology.spec.kafka_brokers or ""},
    ]
    if s.kafka_tls:
        env += [{"name": "KAFKA_TLS", "value": "true"}, {"name": "KAFKA_TLS_CA_LOCATION", "value": CA_PATH}]
    auth = s.kafka_auth_type
    if auth != KafkaAuthType.NONE:
        env.append({"name": "KAFKA_AUTH_TYPE", "value": auth.value})
    if auth == KafkaAuthType.TLS:
        env += [
            {"name": "KAFKA_AUTH_TLS_USER_LOCATION", "value": USER_CERT_PATH},
            {"name": "KAFKA_AUTH_TLS_KEY_LOCATION", "value": USER_KEY_PATH},
        ]
    elif auth in (KafkaAuthType.SCRAM_SHA_512, KafkaAuthType.PLAIN):
        env += [
            {"name": "KAFKA_AUTH_USERNAME", "value": s.kafka_username(ctx.owner, ctx.name) or ""},
            {
                "name": "KAFKA_AUTH_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": user_secret_name(ctx), "key": s.kafka_auth_password_secret_key}},
            },
        ]
    return env


def storage_env(ctx: RenderContext) -> list[dict[str, Any]]:
    s = ctx.settings
    if not s.storage or not ctx.facts.storage_secret:
        return []
    return [
        {
            "name": "MC_HOST_algorun",
            "valueFrom": {"secretKeyRef": {"name": ctx.facts.storage_secret, "key": s.storage_secret_key}},
        },
        {"name": "ALGORUN_STORAGE_BUCKET", "value": s.bucket_name(ctx.owner, ctx.name)},
        {"name": "ALGORUN_STORAGE_REGION", "value": s.storage_region},
    ]


def secret_volumes(ctx: RenderContext) -> list[dict[str, Any]]:
    s = ctx.settings
    volumes: list[dict[str, Any]] = []
    if s.kafka_tls:
        volumes.append({"name": CA_VOLUME, "secret": {"secretName": ca_secret_name(ctx), "defaultMode": 0o444}})
    if s.kafka_auth_type == KafkaAuthType.TLS:
        volumes.append({"name": USER_VOLUME, "secret": {"secretName": user_secret_name(ctx), "defaultMode": 0o444}})
    return volumes


def secret_mounts(ctx: RenderContext) -> list[dict[str, Any]]:
    s = ctx.settings
    mounts: list[dict[str, Any]] = []
    if s.kafka_tls:
        mounts.append({"name": CA_VOLUME, "mountPath": CA_PATH, "subPath": s.kafka_tls_ca_key, "readOnly": True})
    if s.kafka_auth_type == KafkaAuthType.TLS:
        mounts += [
            {
                "name": USER_VOLUME,
                "mountPath": USER_CERT_PATH,
                "subPath": s.kafka_auth_certificate_key,
                "readOnly": True,
            },
            {
                "name": USER_VOLUME,
                "mountPath": USER_KEY_PATH,
                "subPath": s.kafka_auth_key_secret_key,
                "readOnly": True,
            },
        ]
    return mounts


def data_plane_env(ctx: RenderContext) -> list[dict[str, Any]]:
    return kafka_env(ctx) + storage_env(ctx)
