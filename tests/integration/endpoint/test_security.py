"""TLS, mutual TLS and client authentication (bearer token / API key) on HTTP and gRPC.

Runs on the embedded local log (no broker needed): what is tested is the front door, not Kafka.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from algorun.endpoint.service import EndpointService
from tests.support.certs import CertificateAuthority
from tests.support.endpoint import NAME, OWNER, local_endpoint

TOKEN, API_KEY = "s3cret-token", "k3y"


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = CertificateAuthority("endpoint-test-ca")
    server_cert, server_key = ca.issue("localhost", ip_addresses=("127.0.0.1",), server=True).write(tmp_path, "server")
    client_cert, client_key = ca.issue("client", client=True).write(tmp_path, "client")
    return {
        "ca": ca.write_ca(tmp_path / "ca.crt"),
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }


@pytest.fixture
async def secured(pki: dict[str, Path], tmp_path: Path) -> AsyncIterator[EndpointService]:
    env = {
        "ALGORUN_ENDPOINT_TLS_CERT": str(pki["server_cert"]),
        "ALGORUN_ENDPOINT_TLS_KEY": str(pki["server_key"]),
        "ALGORUN_ENDPOINT_TLS_CLIENT_CA": str(pki["ca"]),
        "ALGORUN_ENDPOINT_BEARER_TOKENS": f"other,{TOKEN}",
        "ALGORUN_ENDPOINT_API_KEYS": API_KEY,
    }
    async with local_endpoint(tmp_path, "secured-topic", env) as service:
        yield service


def _client_context(pki: dict[str, Path], with_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    if with_cert:
        ctx.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
    return ctx


async def test_https_requires_a_client_certificate_and_a_token(secured: EndpointService, pki: dict[str, Path]) -> None:
    url = f"https://127.0.0.1:{secured.http_port}/{OWNER}/{NAME}/in"
    json_type = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.post(url, data=b"{}", headers=json_type, ssl=_client_context(pki, with_cert=False)) as r:
                await r.read()
        ctx = _client_context(pki)
        cases = [
            ({}, 401),
            ({"Authorization": "Bearer wrong"}, 403),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
            ({"X-API-Key": "nope"}, 403),
            ({"Authorization": f"Bearer {TOKEN}"}, 202),
            ({"X-API-Key": API_KEY}, 202),
        ]
        for headers, status in cases:
            async with http.post(url, data=b"{}", headers={**json_type, **headers}, ssl=ctx) as resp:
                body = await resp.json()
                assert resp.status == status, (headers, body)
                if status == 401:
                    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                if status >= 400:
                    assert body["statusCode"] == status
        async with http.get(f"https://127.0.0.1:{secured.http_port}/health", ssl=ctx) as resp:
            assert resp.status == 200  # probes need no token
        async with http.get(f"https://127.0.0.1:{secured.http_port}/topics", ssl=ctx) as resp:
            assert resp.status == 401


async def test_grpc_over_mtls_needs_the_token_in_metadata(secured: EndpointService, pki: dict[str, Path]) -> None:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki["client_key"].read_bytes(),
        certificate_chain=pki["client_cert"].read_bytes(),
    )
    request = pb.RunRequest(
        deploymentOwner=OWNER, deploymentName=NAME, endpointPath="in", message=b"{}", streamOffset=7
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{secured.grpc_port}", creds) as channel:
        run = channel.stream_stream("/PipelineEndpoint/Run", pb.RunRequest.SerializeToString, pb.RunResponse.FromString)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in run(iter([request])):
                pass
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        acks = [r.streamOffset async for r in run(iter([request]), metadata=(("authorization", f"Bearer {TOKEN}"),))]
        assert acks == [7]
