"""Acceptance test proving the S3 part of the test bed serves the S3 API."""

from __future__ import annotations

import uuid

import pytest
from aiobotocore.session import get_session

from tests.support.s3 import S3Server

pytestmark = pytest.mark.integration


async def test_s3_put_and_get(s3: S3Server) -> None:
    bucket = f"testbed-{uuid.uuid4().hex[:12]}"
    body = b"hello from the test bed\n" * 1000

    async with get_session().create_client("s3", **s3.client_kwargs()) as client:
        await client.create_bucket(Bucket=bucket)
        await client.put_object(Bucket=bucket, Key="dir/object.txt", Body=body)
        got = await client.get_object(Bucket=bucket, Key="dir/object.txt")
        async with got["Body"] as stream:
            data = await stream.read()
        listing = await client.list_objects_v2(Bucket=bucket)

    assert data == body
    assert [o["Key"] for o in listing["Contents"]] == ["dir/object.txt"]
