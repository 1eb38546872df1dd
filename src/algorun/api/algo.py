"""The Algo kind's spec (AlgoSpecV1beta1): a processing node, its versions, inputs, outputs and parameters."""

from __future__ import annotations

from pydantic import Field, model_validator

from algorun.api.base import ApiModel, ContainerImage, Param, Str
from algorun.api.enums import (
    ExecutableMode,
    ExecutorKind,
    GrpcMode,
    InputDeliveryType,
    OutputDeliveryType,
    StderrPolicy,
)


class HttpInput(ApiModel):
    """Where the runner sends an `Http`/`Https` input: `{verb} http(s)://localhost:{port}{path}`."""

    verb: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    path: str | None = None
    headers: dict[str, Str] | None = None
    ca_file: str | None = Field(
        default=None, description="CA bundle that verifies the algo's certificate for Https inputs"
    )


class GrpcInput(ApiModel):
    """A gRPC input: the port the algo's server listens on (on localhost, beside the runner)."""

    port: int | None = Field(default=None, ge=1, le=65535)
    protofile: str | None = None


class FileParameterInput(ApiModel):
    """A file input passed to an executable as the value of a named parameter."""

    parameter: str | None = None
    delimiter: str | None = None


class AlgoInput(ApiModel):
    """An algo input (AlgoInputSpec).

    Both the nested form (`http: {verb, port, path}`) and the original runner's flat form (`httpVerb`,
    `httpPort`, `httpPath`, `httpHeaders`, `parameter`, `parameterDelimiter`) are accepted; the flat form is
    folded into the nested one on load.
    """

    name: str
    input_delivery_type: InputDeliveryType
    content_types: list[str] = Field(default_factory=list)
    is_required: bool | None = None
    http: HttpInput | None = None
    grpc: GrpcInput | None = None
    file_parameter: FileParameterInput | None = None
    environment_variable: str | None = Field(
        default=None, description="Name of the variable that carries an EnvironmentVariable input"
    )
    # The flat form (see the class docstring): accepted, folded into the nested fields, never dumped.
    http_verb: str | None = Field(default=None, exclude=True)
    http_port: int | None = Field(default=None, exclude=True, ge=1, le=65535)
    http_path: str | None = Field(default=None, exclude=True)
    http_headers: str | None = Field(default=None, exclude=True)
    parameter: str | None = Field(default=None, exclude=True)
    parameter_delimiter: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _fold_flat_form(self) -> AlgoInput:
        from algorun.api.headers import parse_http_headers

        if any(v is not None for v in (self.http_verb, self.http_port, self.http_path, self.http_headers)):
            http = self.http or HttpInput()
            http.verb = http.verb or self.http_verb
            http.port = http.port or self.http_port
            http.path = http.path or self.http_path
            if self.http_headers:
                http.headers = {**parse_http_headers(self.http_headers), **(http.headers or {})}
            self.http = http
        if self.parameter is not None or self.parameter_delimiter is not None:
            fp = self.file_parameter or FileParameterInput()
            fp.parameter = fp.parameter or self.parameter
            fp.delimiter = fp.delimiter or self.parameter_delimiter
            self.file_parameter = fp
        self.http_verb = self.http_port = self.http_path = self.http_headers = None
        self.parameter = self.parameter_delimiter = None
        return self


class AlgoOutput(ApiModel):
    """An algo output (AlgoOutputSpec)."""

    name: str
    output_delivery_type: OutputDeliveryType
    content_type: str | None = None
    parameter: str | None = None


class AlgoVersion(ApiModel):
    """One version of an algo (AlgoVersionModel)."""

    version_tag: Str
    image: ContainerImage | None = None
    entrypoint: str | None = Field(
        default=None,
        description="Command line of the algo (split on spaces); for the python executor, module:function",
    )
    latest: bool | None = None


class AlgoSpec(ApiModel):
    """An algo (AlgoSpecV1beta1)."""

    owner: str
    name: str
    versions: list[AlgoVersion] = Field(min_length=1)
    executor: ExecutorKind | None = Field(
        default=None,
        description="How the runner calls the algo. When omitted it is inferred from the inputs "
        "(Http/Https: http, Grpc: grpc, otherwise Executable).",
    )
    parameters: list[Param] | None = None
    inputs: list[AlgoInput] = Field(default_factory=list)
    outputs: list[AlgoOutput] = Field(default_factory=list)
    gpu_enabled: bool | None = None
    executable_mode: ExecutableMode | None = Field(
        default=None, description="Executable algos: per-message (default) or streaming (one long-lived process)"
    )
    grpc_mode: GrpcMode | None = Field(default=None, description="grpc algos: unary (default) or stream")
    stderr_policy: StderrPolicy | None = Field(
        default=None, description="Executable algos: log (default) or fail (stderr output fails the message)"
    )

    @property
    def effective_executor(self) -> ExecutorKind:
        """The declared executor, or the one the inputs imply: http(s) inputs mean HTTP, gRPC ones GRPC."""
        if self.executor is not None:
            return self.executor
        kinds = {i.input_delivery_type for i in self.inputs}
        if kinds & {InputDeliveryType.HTTP, InputDeliveryType.HTTPS}:
            return ExecutorKind.HTTP
        if InputDeliveryType.GRPC in kinds:
            return ExecutorKind.GRPC
        return ExecutorKind.EXECUTABLE

    def version(self, tag: str) -> AlgoVersion | None:
        """The version whose tag is `tag` (None when no version has it)."""
        return next((v for v in self.versions if v.version_tag == tag), None)

    def input(self, name: str) -> AlgoInput | None:
        return next((i for i in self.inputs if i.name == name), None)

    def output(self, name: str) -> AlgoOutput | None:
        return next((o for o in self.outputs if o.name == name), None)
