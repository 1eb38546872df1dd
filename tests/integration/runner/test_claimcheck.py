"""FileReference payloads through real S3-compatible storage (the `s3` fixture): a referenced input is read from
the bucket, a FileReference output is uploaded and its reference produced, a missing object is dead-lettered, an
embedded output over the storage threshold travels as a reference. And an output over the broker's message size
limit: claim-checked when storage is configured, its input dead-lettered when not (also inside a transaction);
the stream goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from algorun import storage
from algorun.bus import Bus, KafkaSettings, contract, open_bus
from algorun.runner.payloads import S3ClaimCheck, storage_settings
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import collect, create_topics, header, options, running, send
from tests.support.s3 import S3Server
from tests.support.waiting import wait_until

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
async def store(s3_env: None) -> AsyncIterator[storage.ObjectStore]:
    settings = storage_settings(runner_config(names()))
    assert settings is not None and settings.bucket == BUCKET
    async with storage.ObjectStore(settings) as cc:
        await cc.ensure_bucket()
        yield cc


async def test_reference_in_reference_out(local_bus: Bus, store: storage.ObjectStore) -> None:
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


async def test_missing_object_is_dead_lettered(local_bus: Bus, store: storage.ObjectStore) -> None:
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


@pytest.mark.parametrize("entrypoint", ["tests.algos.pyalgos:repeat", "tests.algos.pyalgos:repeat_async"])
async def test_an_output_over_the_threshold_travels_as_a_reference(
    local_bus: Bus, store: storage.ObjectStore, monkeypatch: pytest.MonkeyPatch, entrypoint: str
) -> None:
    """Storage configured with a 1,000-byte threshold: a 5,000-byte output is uploaded and its reference written
    (messageDataType FileReference), the small ones stay inline, in order; for a sync algo (the inline path) and
    an async one."""
    monkeypatch.setenv("ALGORUN_STORAGE_THRESHOLD", "1000")
    n = names()
    config = runner_config(n, entrypoint=entrypoint)
    await create_topics(local_bus, config)
    async with running(config, local_bus) as r:
        assert r.claim_check.offload_above == 1000
        await send(local_bus, n["input"], [b"3*a", b"5000*b", b"1000*c"])
        out = await collect(local_bus, n["output"], 3)
    assert [header(m, contract.MESSAGE_DATA_TYPE) for m in out] == ["Embedded", "FileReference", "Embedded"]
    assert out[0].value == b"aaa"
    assert out[2].value == b"c" * 1000  # at the threshold: inline
    assert await store.read(storage.FileReference.parse(out[1].value)) == b"b" * 5000


async def test_an_output_too_large_for_kafka_is_claim_checked(
    kafka_bus: Bus, store: storage.ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A threshold above the broker's limit (1,000,000 bytes, librdkafka's message.max.bytes): the 2 MB output is
    refused by Kafka, then uploaded and written as a reference instead of being sent again forever."""
    monkeypatch.setenv("ALGORUN_STORAGE_THRESHOLD", str(10 * 1024 * 1024))
    n = names()
    config = runner_config(n, entrypoint="tests.algos.pyalgos:repeat")
    await create_topics(kafka_bus, config)
    async with running(config, kafka_bus):
        await send(kafka_bus, n["input"], [b"2000000*x", b"2*y"])
        out = await collect(kafka_bus, n["output"], 2, timeout=60)
        await wait_until(lambda: no_lag(kafka_bus, n["group"], n["input"]), 30, "the inputs to be committed")
    by_type = {header(m, contract.MESSAGE_DATA_TYPE): m for m in out}
    assert by_type["Embedded"].value == b"yy"
    assert await store.read(storage.FileReference.parse(by_type["FileReference"].value)) == b"x" * 2_000_000


async def test_an_output_too_large_for_kafka_without_storage_dead_letters_its_input(kafka_bus: Bus) -> None:
    """No storage: the input of the refused output goes to the dead-letter topic with the reason, the next
    message is processed, and both are committed (nothing is written again forever, nothing is lost)."""
    n = names()
    config = runner_config(n, entrypoint="tests.algos.pyalgos:repeat")
    await create_topics(kafka_bus, config)
    async with running(config, kafka_bus):
        await send(kafka_bus, n["input"], [b"2000000*x", b"2*y"])
        [dead] = await collect(kafka_bus, n["dlq"], 1, timeout=60)
        [out] = await collect(kafka_bus, n["output"], 1)
        await wait_until(lambda: no_lag(kafka_bus, n["group"], n["input"]), 30, "the inputs to be committed")
    assert dead.value == b"2000000*x"
    assert header(dead, contract.ERROR_TYPE) == "MessageTooLarge"
    assert "2000000 bytes is over the broker's message size limit" in (header(dead, contract.ERROR_MESSAGE) or "")
    assert out.value == b"yy"


async def test_exactly_once_dead_letters_an_output_too_large_for_kafka_in_the_same_transaction(kafka_bus: Bus) -> None:
    """With transactions, librdkafka refuses the write at once, so it never joins the transaction: committing
    would lose it without a trace. The input is dead-lettered in the same transaction instead, and the stream goes
    on (read-committed readers see the dead letter and the next output; the inputs are committed)."""
    n = names()
    config = runner_config(n, entrypoint="tests.algos.pyalgos:repeat")
    await create_topics(kafka_bus, config)
    async with running(config, kafka_bus, options(exactly_once=True)):
        await send(kafka_bus, n["input"], [b"2*a", b"2000000*x", b"2*y"])
        [dead] = await collect(kafka_bus, n["dlq"], 1, timeout=60)
        out = await collect(kafka_bus, n["output"], 2)
        await wait_until(lambda: no_lag(kafka_bus, n["group"], n["input"]), 30, "the inputs to be committed")
    assert dead.value == b"2000000*x"
    assert header(dead, contract.ERROR_TYPE) == "MessageTooLarge"
    assert sorted(m.value for m in out) == [b"aa", b"yy"]


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
async def test_a_dead_letter_too_large_for_kafka_is_written_without_its_value(
    kafka_settings: KafkaSettings, kafka_bus: Bus, exactly_once: bool
) -> None:
    """An input whose dead letter is over the producer's limit (its error headers push it over): the dead letter
    is written without the value, saying so and where the input is, and the stream goes on. Before, it was
    written again forever and its partition's commits stalled."""
    n = names()
    config = runner_config(n, entrypoint="tests.algos.pyalgos:poison", retry_enabled=False)
    await create_topics(kafka_bus, config)
    limited = open_bus(kafka_settings.model_copy(update={"producer_config": {"message.max.bytes": 100_000}}))
    big = b"poison" + b"p" * 99_900  # read from a topic that takes it; written with error headers it is over
    try:
        async with running(config, limited, options(exactly_once=exactly_once)):
            await send(kafka_bus, n["input"], [big, b"fine"])
            [dead] = await collect(kafka_bus, n["dlq"], 1, timeout=60)
            [out] = await collect(kafka_bus, n["output"], 1)
            await wait_until(lambda: no_lag(kafka_bus, n["group"], n["input"]), 30, "the inputs to be committed")
    finally:
        await limited.close()
    assert dead.value == b""
    assert header(dead, contract.ERROR_VALUE_OMITTED) == str(len(big))
    assert (header(dead, contract.ERROR_TOPIC), header(dead, contract.ERROR_OFFSET)) == (n["input"], "0")
    assert out.value == b"FINE"


async def no_lag(bus: Bus, group: str, topic: str) -> bool:
    return sum(x.lag for x in (await bus.lag(group, [topic])).values()) == 0


async def test_a_failed_upload_is_dead_lettered_and_the_stream_goes_on(
    local_bus: Bus, s3_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bucket does not exist: uploading the FileReference output fails, which is a failed run (retried per
    the plan, then dead-lettered with the storage error), not an internal error that stalls the partition."""
    monkeypatch.setenv("ALGORUN_STORAGE_BUCKET", "no-such-bucket")
    n = names()
    config = runner_config(
        n,
        outputs=[
            {"name": "out", "outputDeliveryType": "StdOut", "topic": n["output"], "messageDataType": "FileReference"}
        ],
    )
    await create_topics(local_bus, config)
    async with running(config, local_bus):
        await send(local_bus, n["input"], [b"one", b"two"])
        dead = await collect(local_bus, n["dlq"], 2)
        await wait_until(lambda: no_lag(local_bus, n["group"], n["input"]), 30, "the inputs to be committed")
    assert [m.value for m in dead] == [b"one", b"two"]
    assert {header(m, contract.ERROR_TYPE) for m in dead} == {"StorageError"}
