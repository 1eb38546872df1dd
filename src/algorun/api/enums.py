"""Enumerations of the algo.run/v1beta1 API: every value existing manifests use, with their casing.

They are `StrEnum`s so that a value compares equal to its wire string and serialises as itself.
"""

from __future__ import annotations

from enum import StrEnum


class ExecutorKind(StrEnum):
    """How the runner hands a message to the algo (and how the operator lays out its pod).

    `python` is ours: an in-process callable `module:function` named by the version's entrypoint.
    """

    UNKNOWN = "Unknown"
    EXECUTABLE = "Executable"
    HTTP = "http"
    GRPC = "grpc"
    SPARK = "Spark"
    KAFKA_STREAMS = "KafkaStreams"
    KSQL = "ksql"
    FAUST = "Faust"
    DELEGATED = "Delegated"
    PYTHON = "python"


class InputDeliveryType(StrEnum):
    STD_IN = "StdIn"
    HTTP = "Http"
    HTTPS = "Https"
    GRPC = "Grpc"
    FILE_PARAMETER = "FileParameter"
    FILE_ARRAY_PARAMETER = "FileArrayParameter"
    MAPPED_PATH = "MappedPath"
    ENVIRONMENT_VARIABLE = "EnvironmentVariable"
    KAFKA_TOPIC = "KafkaTopic"


class OutputDeliveryType(StrEnum):
    STD_OUT = "StdOut"
    FILE_PARAMETER = "FileParameter"
    FOLDER_PARAMETER = "FolderParameter"
    HTTP_RESPONSE = "HttpResponse"
    KAFKA_TOPIC = "KafkaTopic"


class RetryStrategyKind(StrEnum):
    SIMPLE = "Simple"
    RETRY_TOPICS = "RetryTopics"
    STATEFUL_ORDERED = "StatefulOrdered"
    STATEFUL_UNORDERED = "StatefulUnordered"


class ComponentType(StrEnum):
    ALGO = "Algo"
    ENDPOINT = "Endpoint"
    DATA_CONNECTOR = "DataConnector"
    EVENT_HOOK = "EventHook"


class EndpointType(StrEnum):
    HTTP = "HTTP"
    RTMP = "RTMP"
    KAFKA = "Kafka"
    GRPC = "gRPC"


class DataConnectorType(StrEnum):
    SOURCE = "Source"
    SINK = "Sink"


class MessageDataType(StrEnum):
    EMBEDDED = "Embedded"
    FILE_REFERENCE = "FileReference"


class ImagePullPolicy(StrEnum):
    IF_NOT_PRESENT = "IfNotPresent"
    ALWAYS = "Always"
    NEVER = "Never"


class MetricSourceType(StrEnum):
    RESOURCE = "Resource"
    OBJECT = "Object"
    PODS = "Pods"
    EXTERNAL = "External"


class MetricTargetType(StrEnum):
    UTILIZATION = "Utilization"
    VALUE = "Value"
    AVERAGE_VALUE = "AverageValue"


class DeploymentStatus(StrEnum):
    """Overall and per-component status strings of a PipelineDeployment."""

    DEPLOYED = "Deployed"
    PROGRESSING = "Progressing"
    ERROR = "Error"
    TERMINATED = "Terminated"


class NotifType(StrEnum):
    OPERATOR = "Operator"
    PIPELINE_DEPLOYMENT_STATUS = "PipelineDeploymentStatus"
    PIPELINE_DEPLOYMENT_DELETED = "PipelineDeploymentDeleted"
    PIPELINE_DEPLOYMENT = "PipelineDeployment"
    PIPELINE_DEPLOYMENT_POD = "PipelineDeploymentPod"


class LogLevel(StrEnum):
    ERROR = "Error"
    WARNING = "Warning"
    INFO = "Info"
    DEBUG = "Debug"


class LogType(StrEnum):
    SERVER = "Server"
    RUNNER = "Runner"
    ALGO = "Algo"
    DATA = "Data"
    OPERATOR = "Operator"
    EVENT_HOOK = "EventHook"
    DATA_CONNECTOR = "DataConnector"
    ENDPOINT = "Endpoint"
    PIPELINE = "Pipeline"
    API = "API"


class DataType(StrEnum):
    STRING = "String"
    SELECT = "Select"
    SWITCH = "Switch"
    INTEGER = "Integer"
    DECIMAL = "Decimal"
    FLOAT = "Float"
    CURRENCY = "Currency"
    IPV4 = "Ipv4"
    DATE = "Date"
    DATETIME = "Datetime"
    BOOLEAN = "Boolean"
    GUID = "Guid"


class KafkaAuthType(StrEnum):
    """Client authentication to Kafka, as the chart's `kafka.auth.type` names it ("" means none)."""

    NONE = ""
    TLS = "tls"
    SCRAM_SHA_512 = "scram-sha-512"
    PLAIN = "plain"

    @classmethod
    def _missing_(cls, value: object) -> KafkaAuthType | None:
        """ "none" (the CLI's word for no authentication) and any case or surrounding spaces are accepted."""
        if isinstance(value, str):
            text = value.strip().lower()
            if text == "none":
                return cls.NONE
            for member in cls:
                if member.value == text:
                    return member
        return None


class WalMode(StrEnum):
    """When the endpoint writes accepted messages to its local write-ahead log."""

    FALLBACK = "fallback"
    ALWAYS = "always"
    DISABLE = "disable"


class ExecutableMode(StrEnum):
    """How an Executable algo is run: a process per message, or one long-lived process exchanging
    length-delimited frames on stdin/stdout (see docs/runner.md)."""

    PER_MESSAGE = "per-message"
    STREAMING = "streaming"


class GrpcMode(StrEnum):
    """Which `Process` call of the algorun proto a grpc algo serves."""

    UNARY = "unary"
    STREAM = "stream"


class StderrPolicy(StrEnum):
    """What output on stderr means for an Executable algo: only logged, or a failure of the message."""

    LOG = "log"
    FAIL = "fail"
