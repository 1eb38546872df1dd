"""A renewed serving certificate is served without a restart, on HTTPS and gRPC.

The files are swapped the way the kubelet updates a mounted Secret (cert-manager renews it in place): the
visible names are symlinks through `..data`, which is re-pointed at a new directory in one rename.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from cryptography import x509

import algorun.endpoint.service as endpoint_service
from algorun.endpoint.pb import pipeline_endpoint_pb2 as pb
from algorun.endpoint.service import EndpointService
from tests.support.certs import CertificateAuthority, Issued
from tests.support.endpoint import JSON, NAME, OWNER, local_endpoint
from tests.support.mounts import MountedSecret
from tests.support.waiting import eventually


def _issue(ca: CertificateAuthority) -> Issued:
    return ca.issue("localhost", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True)


def _serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


async def _served_serial(port: int) -> int:
    """The serial number of the certificate a new TLS connection to `port` is given."""
    pem = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", port), timeout=5)
    return _serial(pem.encode())


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority("renewing-ca")


@pytest.fixture
async def renewing(
    ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[EndpointService, MountedSecret]]:
    monkeypatch.setattr(endpoint_service, "RELOAD_CHECK_S", 0.1)
    secret = MountedSecret(tmp_path / "endpoint-tls")
    first = _issue(ca)
    secret.publish({"tls.crt": first.cert_pem, "tls.key": first.key_pem})
    env = {
        "ALGORUN_ENDPOINT_TLS_CERT": str(secret.root / "tls.crt"),
        "ALGORUN_ENDPOINT_TLS_KEY": str(secret.root / "tls.key"),
    }
    async with local_endpoint(tmp_path, "renewing-topic", env) as service:
        yield service, secret


async def _post_json(service: EndpointService, ca: CertificateAuthority) -> int:
    ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
    url = f"https://localhost:{service.http_port}/{OWNER}/{NAME}/in"
    async with aiohttp.ClientSession() as http, http.post(url, data=b'{"a": 1}', headers=JSON, ssl=ctx) as r:
        await r.read()
        return r.status


async def _grpc_acks(service: EndpointService, ca: CertificateAuthority) -> list[int]:
    creds = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem)
    request = pb.RunRequest(
        deploymentOwner=OWNER, deploymentName=NAME, endpointPath="in", message=b'{"a": 2}', streamOffset=3
    )
    async with grpc.aio.secure_channel(f"localhost:{service.grpc_port}", creds) as channel:
        run = channel.stream_stream("/PipelineEndpoint/Run", pb.RunRequest.SerializeToString, pb.RunResponse.FromString)
        return [r.streamOffset async for r in run(iter([request]), timeout=10)]


async def test_a_renewed_certificate_is_served_on_both_listeners_without_a_restart(
    renewing: tuple[EndpointService, MountedSecret], ca: CertificateAuthority
) -> None:
    service, secret = renewing
    first_serial = await _served_serial(service.http_port)
    assert first_serial == await _served_serial(service.grpc_port)

    renewed = _issue(ca)
    secret.publish({"tls.crt": renewed.cert_pem, "tls.key": renewed.key_pem})
    new_serial = _serial(renewed.cert_pem)
    assert new_serial != first_serial

    async def serves_renewed(port: int) -> bool:
        return await _served_serial(port) == new_serial

    await eventually(lambda: serves_renewed(service.http_port), "HTTPS serving the renewed certificate", 20)
    await eventually(lambda: serves_renewed(service.grpc_port), "gRPC serving the renewed certificate", 20)
    # Clients that verify against the issuer still get through, on both protocols.
    assert await _post_json(service, ca) == 202
    assert await _grpc_acks(service, ca) == [3]


async def test_a_pair_that_does_not_match_keeps_the_current_certificate(
    renewing: tuple[EndpointService, MountedSecret], ca: CertificateAuthority
) -> None:
    service, secret = renewing
    assert service.certificate is not None
    serving = await _served_serial(service.http_port)
    one, other = _issue(ca), _issue(ca)
    secret.publish({"tls.crt": one.cert_pem, "tls.key": other.key_pem})  # a certificate with somebody else's key

    async def http_looked() -> bool:
        return service.certificate is not None and service.certificate.rejected > 0

    await eventually(http_looked, "the HTTPS listener to look at the changed files", 20)
    assert await _served_serial(service.http_port) == serving
    assert await _served_serial(service.grpc_port) == serving
    assert await _post_json(service, ca) == 202

    fixed = _issue(ca)
    secret.publish({"tls.crt": fixed.cert_pem, "tls.key": fixed.key_pem})

    async def serves_fixed() -> bool:
        return await _served_serial(service.http_port) == _serial(fixed.cert_pem)

    await eventually(serves_fixed, "HTTPS serving the next good certificate", 20)
    assert await _served_serial(service.grpc_port) == _serial(fixed.cert_pem)
