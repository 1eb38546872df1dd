"""The claim check: offload large values to S3-compatible storage, resolve references back, streaming.

- `offload(value)` keeps small values inline and uploads large ones, returning the FileReference JSON that
  travels instead; the caller sets `messageDataType` accordingly (algorun.bus.contract).
- `put_stream(chunks)` uploads any size with bounded memory (multipart, one part buffered at a time).
- `open(ref)` streams an object back in chunks; `read(ref)` is for values that fit in memory.
Every upload either completes or raises `UploadFailed` (an incomplete multipart upload is aborted): a reference
is only ever returned for an object that exists.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from algorun.storage.errors import ObjectMissing, StorageConfigError, StorageError, UploadFailed
from algorun.storage.reference import FileReference
from algorun.storage.settings import StorageSettings

CHUNK = 256 * 1024
_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


@dataclass(frozen=True, slots=True)
class Offloaded:
    """What to put in the message: the value itself, or a FileReference JSON when `is_reference`."""

    value: bytes
    is_reference: bool


class ObjectStore:
    """One S3 client for the lifetime of a component: a client per message would set up a connection pool and look up
    credentials for every message."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        s = self.settings
        session = get_session()
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=s.endpoint_url,
                region_name=s.region,
                aws_access_key_id=s.access_key,
                aws_secret_access_key=s.secret_key.get_secret_value() if s.secret_key else None,
                config=Config(
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": 5, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                ),
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise StorageConfigError("ObjectStore is not started (use `async with ObjectStore(...)`)")
        return self._client

    def _bucket(self, bucket: str | None) -> str:
        b = bucket or self.settings.bucket
        if not b:
            raise StorageConfigError("no bucket: set StorageSettings.bucket or pass bucket=")
        return b

    # ---- writing ----

    async def offload(self, value: bytes, *, bucket: str | None = None, key: str | None = None) -> Offloaded:
        """Inline when `len(value) <= threshold`, else upload and return the reference."""
        if len(value) <= self.settings.threshold:
            return Offloaded(value, False)
        ref = await self.put(value, bucket=bucket, key=key)
        return Offloaded(ref.to_json(), True)

    async def put(self, data: bytes, *, bucket: str | None = None, key: str | None = None) -> FileReference:
        b, k = self._bucket(bucket), key or str(uuid.uuid4())
        try:
            await self.client.put_object(Bucket=b, Key=k, Body=data)
        except (ClientError, BotoCoreError) as e:
            raise UploadFailed(f"upload to {self.settings.host}/{b}/{k} failed: {e}", retriable=True) from e
        return FileReference(bucket=b, file=k, host=self.settings.host)

    async def put_stream(
        self, chunks: AsyncIterable[bytes], *, bucket: str | None = None, key: str | None = None
    ) -> FileReference:
        """Upload a stream of any length, buffering at most one part (`part_size`) in memory."""
        b, k = self._bucket(bucket), key or str(uuid.uuid4())
        part_size = self.settings.part_size
        buf = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buf += chunk
                while len(buf) >= part_size:
                    if upload_id is None:
                        created = await self.client.create_multipart_upload(Bucket=b, Key=k)
                        upload_id = created["UploadId"]
                    body = bytes(buf[:part_size])
                    del buf[:part_size]
                    n = len(parts) + 1
                    got = await self.client.upload_part(Bucket=b, Key=k, UploadId=upload_id, PartNumber=n, Body=body)
                    parts.append({"ETag": got["ETag"], "PartNumber": n})
            if upload_id is None:
                await self.client.put_object(Bucket=b, Key=k, Body=bytes(buf))
            else:
                if buf or not parts:
                    n = len(parts) + 1
                    got = await self.client.upload_part(
                        Bucket=b, Key=k, UploadId=upload_id, PartNumber=n, Body=bytes(buf)
                    )
                    parts.append({"ETag": got["ETag"], "PartNumber": n})
                await self.client.complete_multipart_upload(
                    Bucket=b, Key=k, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException as e:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await self.client.abort_multipart_upload(Bucket=b, Key=k, UploadId=upload_id)
            if isinstance(e, ClientError | BotoCoreError):
                raise UploadFailed(f"upload to {self.settings.host}/{b}/{k} failed: {e}", retriable=True) from e
            raise
        return FileReference(bucket=b, file=k, host=self.settings.host)

    # ---- reading ----

    async def open(self, ref: FileReference, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        """The object's bytes in chunks, never the whole object in memory. Readers ignore `ref.host`."""
        try:
            resp = await self.client.get_object(Bucket=ref.bucket, Key=ref.file)
        except ClientError as e:
            raise _read_error(e, ref) from e
        except BotoCoreError as e:
            raise StorageError(f"read {ref.bucket}/{ref.file}: {e}", retriable=True) from e
        body = resp["Body"]
        try:
            while chunk := await body.read(chunk_size):
                yield chunk
        finally:
            body.close()

    async def read(self, ref: FileReference) -> bytes:
        out = bytearray()
        async for chunk in self.open(ref):
            out += chunk
        return bytes(out)

    async def resolve(self, value: bytes, is_reference: bool) -> bytes:
        """The payload a message carries: its value, or the referenced object's bytes."""
        return await self.read(FileReference.parse(value)) if is_reference else value

    async def delete(self, ref: FileReference) -> None:
        try:
            await self.client.delete_object(Bucket=ref.bucket, Key=ref.file)
        except (ClientError, BotoCoreError) as e:
            raise StorageError(f"delete {ref.bucket}/{ref.file}: {e}", retriable=True) from e

    async def ensure_bucket(self, bucket: str | None = None) -> None:
        b = self._bucket(bucket)
        try:
            await self.client.head_bucket(Bucket=b)
        except ClientError:
            try:
                await self.client.create_bucket(Bucket=b)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise StorageError(f"create bucket {b} on {self.settings.host}: {e}") from e


def _read_error(e: ClientError, ref: FileReference) -> StorageError:
    code = str(e.response.get("Error", {}).get("Code", ""))
    if code in _MISSING:
        return ObjectMissing(f"FileReference {ref.bucket}/{ref.file}: no such object ({code})")
    return StorageError(f"read {ref.bucket}/{ref.file}: {e}", retriable=code in ("SlowDown", "InternalError", "503"))
