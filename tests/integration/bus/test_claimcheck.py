"""Claim check against the test-bed S3 server: offload, resolve, stream large objects, fail loudly."""

from __future__ import annotations

import hashlib
import resource
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from algorun.storage import FileReference, ObjectMissing, ObjectStore, StorageSettings, UploadFailed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MiB = 1024 * 1024


@pytest.fixture
async def claim(s3: Any) -> AsyncIterator[ObjectStore]:
    # The original's connection string, with a secret full of URL-unsafe characters, raw.
    scheme, host = s3.endpoint_url.split("://", 1)
    settings = StorageSettings.from_connection_string(
        f"{scheme}://{s3.access_key_id}:se/cr+t@w:rd{s3.secret_access_key}@{host}",
        bucket=f"algorun-test-{uuid.uuid4().hex[:10]}",
        threshold=1024,
        part_size=5 * MiB,
    )
    async with ObjectStore(settings) as cc:
        await cc.ensure_bucket()
        yield cc


async def test_small_values_stay_inline_and_large_ones_round_trip(claim: ObjectStore) -> None:
    small = await claim.offload(b"x" * 1024)
    assert (small.value, small.is_reference) == (b"x" * 1024, False)
    big_value = bytes(range(256)) * 40
    big = await claim.offload(big_value)
    assert big.is_reference
    ref = FileReference.parse(big.value)
    assert ref.bucket == claim.settings.bucket and ref.file and ref.host
    assert await claim.resolve(big.value, True) == big_value
    assert await claim.resolve(b"inline", False) == b"inline"


async def test_upload_to_a_missing_bucket_is_an_error_not_a_reference(claim: ObjectStore) -> None:
    with pytest.raises(UploadFailed, match="no-such-bucket"):
        await claim.offload(b"y" * 4096, bucket="no-such-bucket-" + uuid.uuid4().hex[:8])


async def test_a_reference_to_a_missing_object_fails_clearly(claim: ObjectStore) -> None:
    with pytest.raises(ObjectMissing, match="gone"):
        await claim.read(FileReference(bucket=claim.settings.bucket, file="gone"))


async def _pattern(total: int, chunk: int = MiB) -> AsyncIterator[bytes]:
    block = hashlib.sha256(b"seed").digest() * (chunk // 32)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield block[:n]
        sent += n


async def test_large_values_stream_without_buffering(claim: ObjectStore) -> None:
    total = 256 * MiB + 12345  # not a multiple of the part size
    expected = hashlib.sha256()
    async for chunk in _pattern(total):
        expected.update(chunk)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    ref = await claim.put_stream(_pattern(total))
    got = hashlib.sha256()
    size = 0
    async for chunk in claim.open(ref):
        got.update(chunk)
        size += len(chunk)

    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert size == total
    assert got.hexdigest() == expected.hexdigest()
    assert growth < 96 * MiB, f"peak memory grew by {growth // MiB} MiB moving {total // MiB} MiB"
