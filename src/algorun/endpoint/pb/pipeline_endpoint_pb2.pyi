# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RunRequest(_message.Message):
    __slots__ = ("deploymentOwner", "deploymentName", "endpointPath", "traceID", "contentType", "message", "parameters", "streamOffset")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEPLOYMENTOWNER_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENTNAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTPATH_FIELD_NUMBER: _ClassVar[int]
    TRACEID_FIELD_NUMBER: _ClassVar[int]
    CONTENTTYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STREAMOFFSET_FIELD_NUMBER: _ClassVar[int]
    deploymentOwner: str
    deploymentName: str
    endpointPath: str
    traceID: str
    contentType: str
    message: bytes
    parameters: _containers.ScalarMap[str, str]
    streamOffset: int
    def __init__(self, deploymentOwner: _Optional[str] = ..., deploymentName: _Optional[str] = ..., endpointPath: _Optional[str] = ..., traceID: _Optional[str] = ..., contentType: _Optional[str] = ..., message: _Optional[bytes] = ..., parameters: _Optional[_Mapping[str, str]] = ..., streamOffset: _Optional[int] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("streamOffset",)
    STREAMOFFSET_FIELD_NUMBER: _ClassVar[int]
    streamOffset: int
    def __init__(self, streamOffset: _Optional[int] = ...) -> None: ...

class ListTopicsResponse(_message.Message):
    __slots__ = ("topics",)
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, topics: _Optional[_Iterable[str]] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
