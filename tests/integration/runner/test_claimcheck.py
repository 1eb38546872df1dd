"""FileReference payloads through real S3-compatible storage (the `s3` fixture): a referenced input is read from
the bucket, a FileReference output is uploaded and its reference produced, a missing object is dead-lettered."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from algorun import storage
from algorun.bus import Bus, contract
from algorun.runner.payloads import S3ClaimCheck, storage_settings
from tests.algos.configs import names, runner_config
from tests.integration.runner.harness import collect, create_topics, header, running, send
from tests.support.s3 import S3Server

pytestmark = pytest.mark.integration

BUCKET = "runner-claims"


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
        "AWS_REGION": s3.region,
        "ALGORUN_STORAGE_BUCKET": BUCKET,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def store(s3_env: None) -> AsyncIterator[storage.ClaimCheck]:
    settings = storage_settings(runner_config(names()))
    assert settings is not None and settings.bucket == BUCKET
    async with storage.ClaimCheck(settings) as cc:
        await cc.ensure_bucket()
        yield cc


async def test_reference_in_reference_out(local_bus: Bus, store: storage.ClaimCheck) -> None:
    n = names()
    config = runner_config(
        n,
        outputs=[
            {"name": "out", "outputDeliveryType": "StdOut", "topic": n["output"], "messageDataType": "FileReference"}
        ],
    )
    await create_topics(local_bus, config)
    big = b"claim-checked payload " * 5000
    ref = await store.put(big, key="inputs/one")
    async with running(config, local_bus) as r:
        assert isinstance(r.claim_check, S3ClaimCheck)
        await send(local_bus, n["input"], [ref.to_json()], extra=[(contract.MESSAGE_DATA_TYPE, b"FileReference")])
        [out] = await collect(local_bus, n["output"], 1)
    assert header(out, contract.MESSAGE_DATA_TYPE) == "FileReference"
    produced = storage.FileReference.parse(out.value)
    assert produced.bucket == BUCKET
    assert await store.read(produced) == big.upper()


async def test_missing_object_is_dead_lettered(local_bus: Bus, store: storage.ClaimCheck) -> None:
    n = names()
    config = runner_config(n, data_type="FileReference")
    await create_topics(local_bus, config)
    missing = storage.FileReference(bucket=BUCKET, file="nowhere/to/be/found").to_json()
    async with running(config, local_bus):
        await send(
            local_bus, n["input"], [missing, b"not json"], extra=[(contract.MESSAGE_DATA_TYPE, b"FileReference")]
        )
        dead = await collect(local_bus, n["dlq"], 2)
    assert sorted(header(m, contract.ERROR_TYPE) or "" for m in dead) == ["BadFileReference", "FileReferenceNotFound"]
