"""HTTP and gRPC ingestion into the path's topic, with the contract's key and headers, on a real broker."""

from __future__ import annotations

import json
import uuid

import aiohttp
import grpc
import pytest

from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from tests.support.endpoint import (
    NAME,
    OWNER,
    acks_until_failure,
    create_topic,
    header,
    make_config,
    read_topic,
    run_request,
    running_endpoint,
)

pytestmark = pytest.mark.integration


def _topic() -> str:
    return f"endpoint-rt-{uuid.uuid4().hex[:10]}"


async def test_http_post_lands_in_the_topic_with_headers_and_the_answer_names_it(bootstrap: str) -> None:
    topic = _topic()
    await create_topic(bootstrap, topic, partitions=3)
    async with running_endpoint(make_config(topic, partitions=3), bootstrap) as ep:
        url = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in?z=1&a=2&a=1"
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        async with aiohttp.ClientSession() as http:
            resp = await http.post(
                url, data=b'{"n": 1}', headers={"Content-Type": "application/json", "traceparent": parent}
            )
            answer = await resp.json()
    assert resp.status == 202
    assert answer["topic"] == topic
    assert answer["storedIn"] == "broker"
    trace_id = answer["traceID"]
    msgs = await read_topic(bootstrap, topic, 1)
    [msg] = [m for m in msgs if m.partition == answer["partition"] and m.offset == answer["offset"]]
    assert msg.value == b'{"n": 1}'
    assert msg.key == trace_id.encode()
    assert header(msg, "traceID") == trace_id
    assert header(msg, "run") == "true"
    assert header(msg, "contentType") == "application/json"
    assert header(msg, "endpointParams") == "a=2&a=1&z=1"
    assert header(msg, "messageDataType") == "Embedded"
    assert (header(msg, "traceparent") or "").startswith("00-")


async def test_http_staged_parts_then_trigger_share_the_trace_and_partition(bootstrap: str) -> None:
    topic = _topic()
    await create_topic(bootstrap, topic, partitions=3)
    base_headers = {"Content-Type": "application/json"}
    async with running_endpoint(make_config(topic, partitions=3), bootstrap) as ep, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in/trace-42"
        one = await http.post(base + "/upload", data=b"[1]", headers=base_headers)
        two = await http.post(base + "/upload", data=b"[2]", headers=base_headers)
        trigger = await http.post(base)
        form = aiohttp.FormData()
        form.add_field("file", b"[3]", filename="three.json", content_type="application/json")
        form.add_field("mode", "fast")
        multi = await http.post(f"http://127.0.0.1:{ep.http_port}/{OWNER}/{NAME}/in/trace-43", data=form)
        multi_answer = await multi.json()
    assert [one.status, two.status, trigger.status, multi.status] == [202, 202, 202, 202]
    msgs = await read_topic(bootstrap, topic, 5)
    staged = [m for m in msgs if m.key == b"trace-42"]
    assert [(m.value, header(m, "run")) for m in staged] == [(b"[1]", "false"), (b"[2]", "false"), (b"", "true")]
    assert len({m.partition for m in staged}) == 1
    parts = [m for m in msgs if m.key == b"trace-43"]
    assert [(m.value, header(m, "run"), header(m, "fileName")) for m in parts] == [
        (b"[3]", "false", "three.json"),
        (b"", "true", None),
    ]
    assert all(header(m, "endpointParams") == "mode=fast" for m in parts)
    assert len(multi_answer["messages"]) == 2


async def test_http_refusals_are_json_with_the_right_status(bootstrap: str) -> None:
    topic = _topic()
    await create_topic(bootstrap, topic)
    async with running_endpoint(make_config(topic), bootstrap, {"ALGORUN_ENDPOINT_MAX_BODY_BYTES": "100"}) as ep:
        base = f"http://127.0.0.1:{ep.http_port}"
        cases = [
            ("POST", f"/{OWNER}/{NAME}/nope", {}, b"{}", 404),
            ("POST", f"/{OWNER}/other/in", {}, b"{}", 404),
            ("POST", f"/{OWNER}/{NAME}/in", {"Content-Type": "text/csv"}, b"a,b", 415),
            ("POST", f"/{OWNER}/{NAME}/in", {"Content-Type": "application/json"}, b"x" * 101, 413),
            ("POST", f"/{OWNER}/{NAME}/in/bad%20trace", {"Content-Type": "application/json"}, b"{}", 400),
            ("GET", f"/{OWNER}/{NAME}/in", {}, b"", 405),
            ("DELETE", "/topics", {}, b"", 405),
            ("GET", "/nothing/here", {}, b"", 404),
            ("POST", f"/{OWNER}/{NAME}/in", {"Content-Type": "multipart/form-data; boundary=zz"}, b"garbage", 400),
        ]
        async with aiohttp.ClientSession() as http:
            for method, path, headers, body, status in cases:
                resp = await http.request(method, base + path, data=body, headers=headers)
                text = await resp.text()
                assert resp.status == status, (method, path, text)
                assert resp.content_type == "application/json", (method, path)
                parsed = json.loads(text)
                assert parsed["statusCode"] == status
                assert parsed["errors"][0]["message"]
            topics = await http.get(base + "/topics")
            assert topic in (await topics.text()).split()
    assert await read_topic(bootstrap, topic, 0, limit=1) == []


async def test_grpc_run_acknowledges_each_offset_after_the_broker_and_refuses_unknown_paths(bootstrap: str) -> None:
    topic = _topic()
    await create_topic(bootstrap, topic, partitions=2)
    async with (
        running_endpoint(make_config(topic, partitions=2), bootstrap) as ep,
        grpc.aio.insecure_channel(f"127.0.0.1:{ep.grpc_port}") as channel,
    ):
        run = channel.stream_stream("/PipelineEndpoint/Run", pb.RunRequest.SerializeToString, pb.RunResponse.FromString)
        upload = channel.stream_stream(
            "/PipelineEndpoint/Upload", pb.RunRequest.SerializeToString, pb.RunResponse.FromString
        )
        list_topics = channel.unary_unary(
            "/PipelineEndpoint/ListTopics", pb.Empty.SerializeToString, pb.ListTopicsResponse.FromString
        )

        def req(offset: int, path: str = "in", trace: str = "", body: bytes = b"{}") -> pb.RunRequest:
            return run_request(offset, path, trace, body, parameters={"k": "v"})

        acks = [r.streamOffset async for r in upload(iter([req(1, trace="g1", body=b"[1]")]))]
        assert acks == [1]
        acks = [r.streamOffset async for r in run(iter([req(i, trace=f"t{i}") for i in range(2, 6)]))]
        assert acks == [2, 3, 4, 5]

        call = run(iter([req(10, trace="ok"), req(11, path="missing"), req(12)]))
        got, failed = await acks_until_failure(call)
        assert got == [10]
        assert failed.code() == grpc.StatusCode.NOT_FOUND
        assert "streamOffset 11" in (failed.details() or "")
        assert topic in (await list_topics(pb.Empty())).topics
    msgs = await read_topic(bootstrap, topic, 6)
    by_key = {m.key: m for m in msgs}
    assert header(by_key[b"g1"], "run") == "false"
    assert header(by_key[b"t2"], "run") == "true"
    assert header(by_key[b"t2"], "endpointParams") == "k=v"
    assert header(by_key[b"t2"], "contentType") == "application/json"
    assert b"ok" in by_key
    assert len(msgs) == 6
