"""Bodies over the message limit on a `FileReference` path go to S3 (the `s3` fixture) and Kafka carries the
original's FileReference JSON; small bodies stay inline; without storage, a large body is a 413."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from algorun.api.enums import MessageDataType
from algorun.endpoint.claimcheck import S3PayloadStore
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from algorun.storage import FileReference
from algorun.storage.settings import component_settings
from tests.support.endpoint import (
    NAME,
    OWNER,
    create_topic,
    header,
    make_config,
    read_topic,
    running_endpoint,
)
from tests.support.s3 import S3Server

pytestmark = pytest.mark.integration
LIMIT = 1000
BIN = {"Content-Type": "application/octet-stream"}


@pytest.fixture
async def store(s3: S3Server) -> AsyncIterator[S3PayloadStore]:
    env = {
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
        "ALGORUN_STORAGE_BUCKET": f"endpoint-{uuid.uuid4().hex[:8]}",
    }
    settings = component_settings(env, OWNER, NAME)
    assert settings is not None
    payloads = S3PayloadStore(settings)
    await payloads.start()
    await payloads.claim_check.ensure_bucket()
    try:
        yield payloads
    finally:
        await payloads.close()


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_large_bodies_go_through_the_claim_check_small_ones_stay_inline(
    bootstrap: str, store: S3PayloadStore
) -> None:
    topic = f"endpoint-cc-{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, topic)
    config = make_config(topic, content_type=None, data_type=MessageDataType.FILE_REFERENCE)
    env = {"ALGORUN_ENDPOINT_MAX_BODY_BYTES": str(LIMIT), "ALGORUN_ENDPOINT_MAX_UPLOAD_BYTES": str(8 * 1024 * 1024)}
    small, big, streamed = b"s" * LIMIT, uuid.uuid4().bytes * 20_000, uuid.uuid4().bytes * 400_000  # 320 KB, 6.4 MB
    async with running_endpoint(config, bootstrap, env, store=store) as ep, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in"
        statuses = []
        for trace, body in (("small", small), ("big", big)):
            async with http.post(f"{url}/{trace}", data=body, headers=BIN) as resp:
                statuses.append(resp.status)
        async with http.post(f"{url}/streamed", data=_chunks(streamed), headers=BIN) as resp:  # chunked
            statuses.append(resp.status)
        async with http.post(f"{url}/huge", data=b"x" * (8 * 1024 * 1024 + 1), headers=BIN) as resp:
            statuses.append(resp.status)
            assert (await resp.json())["statusCode"] == 413
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ep.grpc_port}") as channel:
            run = channel.stream_stream(
                "/PipelineEndpoint/Run", pb.RunRequest.SerializeToString, pb.RunResponse.FromString
            )
            request = pb.RunRequest(
                deploymentOwner=OWNER,
                deploymentName=NAME,
                endpointPath="in",
                traceID="grpc",
                message=big,
                streamOffset=1,
            )
            assert [r.streamOffset async for r in run(iter([request]))] == [1]
    assert statuses == [202, 202, 202, 413]
    by_key = {m.key: m for m in await read_topic(bootstrap, topic, 4)}
    assert set(by_key) == {b"small", b"big", b"streamed", b"grpc"}
    assert by_key[b"small"].value == small
    assert header(by_key[b"small"], "messageDataType") == "Embedded"
    for key, payload in ((b"big", big), (b"streamed", streamed), (b"grpc", big)):
        msg = by_key[key]
        assert header(msg, "messageDataType") == "FileReference"
        ref = FileReference.parse(msg.value)
        assert set(json.loads(msg.value)) == {"host", "bucket", "file"}
        assert ref.bucket == store.settings.bucket
        assert await store.claim_check.read(ref) == payload, key


async def test_without_storage_a_large_body_on_a_file_reference_path_is_413(bootstrap: str) -> None:
    topic = f"endpoint-cc-{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, topic)
    config = make_config(topic, content_type=None, data_type=MessageDataType.FILE_REFERENCE)
    async with (
        running_endpoint(config, bootstrap, {"ALGORUN_ENDPOINT_MAX_BODY_BYTES": str(LIMIT)}) as ep,
        aiohttp.ClientSession() as http,
    ):
        url = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in"
        async with http.post(url, data=b"x" * (LIMIT + 1), headers=BIN) as resp:
            body = await resp.json()
            assert resp.status == 413, body
            assert "storage" in body["errors"][0]["message"]
        async with http.post(url, data=b"x" * LIMIT, headers=BIN) as resp:
            assert resp.status == 202
