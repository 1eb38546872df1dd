"""A gRPC stream that cannot store everything ends naming the first offset that was not stored, with that
offset's own status: a client resending from the named offset (or dropping what failed NOT_FOUND) loses nothing,
even when a later request was refused before an earlier one's publish failed."""

from __future__ import annotations

import uuid

import grpc
import pytest

from algorun.api.configs import EndpointPathConfig
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from tests.support.endpoint import (
    acks_until_failure,
    create_topic,
    make_config,
    read_topic,
    run_request,
    running_endpoint,
)

pytestmark = pytest.mark.integration


async def test_the_stream_names_the_earliest_unstored_offset_not_a_later_refusal(bootstrap: str) -> None:
    topic = f"endpoint-gs-{uuid.uuid4().hex[:10]}"
    await create_topic(bootstrap, topic)
    config = make_config(topic)
    # A path whose topic does not exist (the producer never creates topics): its publish waits for the broker
    # until the ack timeout, then fails; meanwhile the request after it is refused at once (unknown path).
    missing = EndpointPathConfig(name="gone", topic=f"endpoint-none-{uuid.uuid4().hex[:10]}")
    config = config.model_copy(update={"paths": [*config.paths, missing]})
    async with (
        running_endpoint(config, bootstrap, {"ALGORUN_ENDPOINT_ACK_TIMEOUT": "1"}) as ep,
        grpc.aio.insecure_channel(f"127.0.0.1:{ep.grpc_port}") as channel,
    ):
        run = channel.stream_stream("/PipelineEndpoint/Run", pb.RunRequest.SerializeToString, pb.RunResponse.FromString)
        call = run(iter([run_request(1, "in", "g-1"), run_request(2, "gone", "g-2"), run_request(3, "nope", "g-3")]))
        acks, failed = await acks_until_failure(call)
    assert acks == [1]
    assert failed.code() == grpc.StatusCode.UNAVAILABLE, failed.details()
    assert (failed.details() or "").startswith("streamOffset 2:"), failed.details()
    assert [m.key for m in await read_topic(bootstrap, topic, 1)] == [b"g-1"]
