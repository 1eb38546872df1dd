"""Credentials from a mounted Secret (`spec.endpoint.auth`): rotated without a restart on HTTP and gRPC, and never
dropped to "no credentials" (which would open the endpoint) when the Secret is emptied."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

import algorun.endpoint.service as endpoint_service
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from algorun.endpoint.service import EndpointService
from tests.support.endpoint import JSON, NAME, OWNER, local_endpoint
from tests.support.mounts import MountedSecret
from tests.support.waiting import eventually


@pytest.fixture
async def guarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[EndpointService, MountedSecret]]:
    monkeypatch.setattr(endpoint_service, "RELOAD_CHECK_S", 0.1)
    secret = MountedSecret(tmp_path / "endpoint-auth")
    secret.publish({"bearer-tokens": b"old-token\n", "api-keys": b"old-key\n"})
    env = {"ALGORUN_ENDPOINT_CREDENTIALS_DIR": str(secret.root)}
    async with local_endpoint(tmp_path, "guarded-topic", env) as service:
        yield service, secret


async def _http_status(service: EndpointService, headers: dict[str, str]) -> int:
    url = f"http://127.0.0.1:{service.http_port}/{OWNER}/{NAME}/in"
    async with aiohttp.ClientSession() as http, http.post(url, data=b"{}", headers={**JSON, **headers}) as r:
        await r.read()
        return r.status


async def _grpc_code(service: EndpointService, token: str) -> grpc.StatusCode:
    request = pb.RunRequest(deploymentOwner=OWNER, deploymentName=NAME, endpointPath="in", message=b"{}")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        run = channel.stream_stream("/PipelineEndpoint/Run", pb.RunRequest.SerializeToString, pb.RunResponse.FromString)
        try:
            async for _ in run(iter([request]), metadata=(("authorization", f"Bearer {token}"),), timeout=10):
                pass
        except grpc.aio.AioRpcError as e:
            return e.code()
        return grpc.StatusCode.OK


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_rotated_credentials_apply_without_a_restart(guarded: tuple[EndpointService, MountedSecret]) -> None:
    service, secret = guarded
    assert await _http_status(service, _bearer("old-token")) == 202
    assert await _http_status(service, {"X-API-Key": "old-key"}) == 202
    assert await _http_status(service, _bearer("new-token")) == 403

    secret.publish({"bearer-tokens": b"new-token\n"})  # the API keys removed from the Secret

    async def rotated() -> bool:
        return await _http_status(service, _bearer("new-token")) == 202

    await eventually(rotated, "the new token accepted")
    assert await _http_status(service, _bearer("old-token")) == 403
    assert await _http_status(service, {"X-API-Key": "old-key"}) == 403
    assert await _http_status(service, {}) == 401
    assert await _grpc_code(service, "new-token") == grpc.StatusCode.OK
    assert await _grpc_code(service, "old-token") == grpc.StatusCode.PERMISSION_DENIED


async def test_an_emptied_secret_keeps_the_endpoint_closed(
    guarded: tuple[EndpointService, MountedSecret], caplog: pytest.LogCaptureFixture
) -> None:
    service, secret = guarded
    caplog.set_level(logging.INFO, logger="algorun.endpoint")

    def refusals() -> int:
        return sum("changed to none" in r.getMessage() for r in caplog.records)

    for emptied in ({"bearer-tokens": b"# all revoked\n"}, {}):  # every line a comment; every key removed
        before = refusals()
        secret.publish(emptied)

        async def refused(before: int = before) -> bool:
            return refusals() > before

        await eventually(refused, "the emptied Secret refused")
        assert await _http_status(service, {}) == 401
        assert await _http_status(service, _bearer("old-token")) == 202  # the last credentials stay
        assert await _grpc_code(service, "wrong") == grpc.StatusCode.PERMISSION_DENIED
