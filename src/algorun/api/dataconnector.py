"""The DataConnector kind's spec: a Kafka Connect connector template."""

from __future__ import annotations

from pydantic import Field

from algorun.api.base import ApiModel, ContainerImage, Str
from algorun.api.enums import DataConnectorType


class DataConnectorVersion(ApiModel):
    """One version of a data connector, chosen by its `versionTag`."""

    version_tag: Str
    image: ContainerImage | None = Field(
        default=None, description="Kafka Connect image that carries the connector plugin"
    )


class DataConnectorSpec(ApiModel):
    """A data connector (DataConnectorSpecV1beta1)."""

    data_connector_type: DataConnectorType
    name: str
    versions: list[DataConnectorVersion] = Field(min_length=1)
    connector_class: str | None = None
    options: dict[str, Str] | None = Field(
        default=None,
        description="Default connector configuration; a deployment's options override it key by key",
    )

    def version(self, tag: str) -> DataConnectorVersion | None:
        return next((v for v in self.versions if v.version_tag == tag), None)
