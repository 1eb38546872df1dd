"""The claim check seen from the endpoint: a body too large for a message goes to S3, a reference goes to Kafka.

Only paths whose `messageDataType` is `FileReference` may use it, and only for bodies larger than the message
limit (`ALGORUN_ENDPOINT_MAX_BODY_BYTES`): a small body travels inline (`messageDataType: Embedded`), a large one
is uploaded and the message carries the original's FileReference JSON (`messageDataType: FileReference`), so
the runner knows per message which one it got, and a message is only as large as it must be.

Storage is `algorun.storage` (S3-compatible), configured like the other data-plane components: the connection
string `MC_HOST_algorun` (the operator sets it from the storage secret) or the standard `AWS_*` variables; the
bucket is `ALGORUN_STORAGE_BUCKET`, else lower(`{owner}.{name}`) (docs/compat.md). `PayloadStore`
keeps the HTTP and gRPC code independent of S3, so they are tested with the in-memory store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterable
from typing import Protocol

from algorun.storage import FileReference, ObjectStore, StorageError, StorageSettings

log = logging.getLogger(__name__)


class PayloadStore(Protocol):
    """Where large bodies go: the HTTP and gRPC code see only this, so they run against S3 or an in-memory
    store alike."""

    async def put_stream(self, chunks: AsyncIterable[bytes]) -> bytes:
        """Store the stream; return the FileReference JSON that points to it. Raises `StorageError`.

        An exception raised by `chunks` itself (e.g. the body is over the upload limit) propagates unchanged, and
        nothing is left stored."""
        ...

    async def discard(self, reference: bytes) -> None:
        """Delete a stored payload whose message was not accepted after all (best effort)."""
        ...


class S3PayloadStore:
    """`PayloadStore` over `algorun.storage.ObjectStore`: one S3 client for the process, multipart streaming."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.claim_check = ObjectStore(settings)

    async def start(self) -> None:
        await self.claim_check.start()

    async def close(self) -> None:
        await self.claim_check.close()

    async def put_stream(self, chunks: AsyncIterable[bytes]) -> bytes:
        ref = await self.claim_check.put_stream(chunks, key=str(uuid.uuid4()))
        return ref.to_json()

    async def discard(self, reference: bytes) -> None:
        with contextlib.suppress(StorageError):
            await self.claim_check.delete(FileReference.parse(reference))


class MemoryPayloadStore:
    """Keeps payloads in memory: for tests (references are only valid inside this process)."""

    def __init__(self, bucket: str = "memory") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}

    async def put_stream(self, chunks: AsyncIterable[bytes]) -> bytes:
        data = bytearray()
        async for chunk in chunks:
            data += chunk
        name = str(uuid.uuid4())
        self.objects[name] = bytes(data)
        return FileReference(bucket=self.bucket, file=name, host="memory").to_json()

    async def discard(self, reference: bytes) -> None:
        self.objects.pop(json.loads(reference)["file"], None)
