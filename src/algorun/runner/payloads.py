"""Claim checks: FileReference values (`{"host", "bucket", "file"}` JSON) resolved to bytes on input, and
FileReference-typed outputs uploaded, through `algorun.storage` when it is configured.

Storage is configured as for the endpoint (the same variables, so both sides of a pipeline agree): the
`MC_HOST_algorun` connection string or the AWS variables (`AWS_ENDPOINT_URL[_S3]`, `AWS_ACCESS_KEY_ID`, ...); the
bucket for uploads is `ALGORUN_STORAGE_BUCKET`, else lower(`{deploymentOwner}.{deploymentName}`) (docs/compat.md).
A reference is read from the bucket it names. Without any of these variables, FileReference messages are
dead-lettered with a clear error (`NoStorage`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from algorun import storage
from algorun.api.configs import RunnerConfig
from algorun.runner.model import AlgoFailure
from algorun.storage.settings import component_settings


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
    offload_above: int | None
    """Embedded outputs larger than this many bytes travel as a FileReference instead; None: never (no storage)."""

    async def get(self, ref: FileReference) -> bytes: ...

    async def put(self, data: bytes, name: str | None = None) -> FileReference: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class NoStorage:
    """Used when no storage is configured: FileReference messages fail with a clear, dead-lettered error."""

    offload_above: int | None = None

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

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

    def __init__(self, bucket: str = "memory", offload_above: int | None = None) -> None:
        self.bucket = bucket
        self.offload_above = offload_above
        self.objects: dict[str, bytes] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def get(self, ref: FileReference) -> bytes:
        try:
            return self.objects[ref.file]
        except KeyError:
            raise AlgoFailure(f"no object {ref.bucket}/{ref.file}", "FileReferenceNotFound") from None

    async def put(self, data: bytes, name: str | None = None) -> FileReference:
        key = name or uuid.uuid4().hex
        self.objects[key] = data
        return FileReference(bucket=self.bucket, file=key)


class S3ClaimCheck:
    """The claim check on S3-compatible storage (`algorun.storage.ObjectStore`), one client for the runner's life.

    Storage errors become AlgoFailures with a `Storage...` error type, so a message whose object is missing or
    whose upload failed goes through retries and then to the dead-letter topic like any failed run (a transient
    outage is retried by the plan; nothing is committed before its writes are acknowledged either way).
    """

    def __init__(self, settings: storage.StorageSettings) -> None:
        self.settings = settings
        self.offload_above: int | None = settings.threshold
        self._store = storage.ObjectStore(settings)

    async def start(self) -> None:
        await self._store.start()

    async def close(self) -> None:
        await self._store.close()

    async def get(self, ref: FileReference) -> bytes:
        try:
            return await self._store.read(storage.FileReference(bucket=ref.bucket, file=ref.file, host=ref.host or ""))
        except storage.ObjectMissing as e:
            raise AlgoFailure(str(e), "FileReferenceNotFound") from e
        except storage.StorageError as e:
            raise AlgoFailure(f"reading FileReference {ref.bucket}/{ref.file}: {e}", "StorageError") from e

    async def put(self, data: bytes, name: str | None = None) -> FileReference:
        """Upload under a fresh key (`{uuid}/{name}` keeps the file name visible without ever overwriting)."""
        key = f"{uuid.uuid4().hex}/{name}" if name else uuid.uuid4().hex
        try:
            ref = await self._store.put(data, key=key)
        except storage.StorageError as e:
            raise AlgoFailure(f"uploading an output to {self.settings.host}: {e}", "StorageError") from e
        return FileReference(bucket=ref.bucket, file=ref.file, host=ref.host or None)


def storage_settings(config: RunnerConfig, env: Mapping[str, str] | None = None) -> storage.StorageSettings | None:
    """The S3 settings from the environment (as the endpoint reads them), or None when none are set."""
    ident = config.identity
    return component_settings(os.environ if env is None else env, ident.deployment_owner, ident.deployment_name)


def claim_check_from_env(config: RunnerConfig, env: Mapping[str, str] | None = None) -> ClaimCheck:
    settings = storage_settings(config, env)
    return S3ClaimCheck(settings) if settings is not None else NoStorage()
