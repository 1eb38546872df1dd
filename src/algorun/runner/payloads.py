"""Claim checks: FileReference values (`{"host", "bucket", "file"}` JSON) resolved to bytes on input, and
large or FileReference-typed outputs uploaded, through `algorun.storage` when it is configured."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Protocol

from algorun.runner.model import AlgoFailure


@dataclass(frozen=True, slots=True)
class FileReference:
    bucket: str
    file: str
    host: str | None = None

    @classmethod
    def parse(cls, value: bytes) -> FileReference:
        try:
            data = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AlgoFailure(
                f"messageDataType is FileReference but the value is not JSON: {e}", "BadFileReference"
            ) from e
        if not isinstance(data, dict) or not data.get("file"):
            raise AlgoFailure('a FileReference needs at least "file" (and "bucket")', "BadFileReference")
        return cls(bucket=str(data.get("bucket") or ""), file=str(data["file"]), host=data.get("host") or None)

    def to_json(self) -> bytes:
        body = {"host": self.host, "bucket": self.bucket, "file": self.file}
        return json.dumps({k: v for k, v in body.items() if v}, separators=(",", ":")).encode()


class ClaimCheck(Protocol):
    async def get(self, ref: FileReference) -> bytes: ...

    async def put(self, data: bytes, name: str | None = None) -> FileReference: ...


class NoStorage:
    """Used when no storage is configured: FileReference messages fail with a clear, dead-lettered error."""

    async def get(self, ref: FileReference) -> bytes:
        raise AlgoFailure(
            f"cannot read FileReference {ref.bucket}/{ref.file}: no storage configured (set MC_HOST_algorun "
            "or --storage)",
            "StorageNotConfigured",
        )

    async def put(self, data: bytes, name: str | None = None) -> FileReference:
        raise AlgoFailure("cannot write a FileReference output: no storage configured", "StorageNotConfigured")


class MemoryClaimCheck:
    """An in-process store (tests, and `algorun run` without S3): references are only valid in this process."""

    def __init__(self, bucket: str = "memory") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}

    async def get(self, ref: FileReference) -> bytes:
        try:
            return self.objects[ref.file]
        except KeyError:
            raise AlgoFailure(f"no object {ref.bucket}/{ref.file}", "FileReferenceNotFound") from None

    async def put(self, data: bytes, name: str | None = None) -> FileReference:
        key = name or uuid.uuid4().hex
        self.objects[key] = data
        return FileReference(bucket=self.bucket, file=key)
