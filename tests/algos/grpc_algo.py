"""A gRPC algo serving algorun.runner.v1.Algo: upper-cases every part; "poison" is an error response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from algorun.runner.proto import algorun_runner_pb2 as pb
from algorun.runner.proto import algorun_runner_pb2_grpc as pb_grpc


def _answer(request: Any) -> Any:
    data = b"".join(p.data for p in request.parts)
    if b"poison" in data:
        return pb.ProcessResponse(id=request.id, error="poison is not food")  # type: ignore[attr-defined]
    out = pb.Output(name="", data=data.upper(), content_type="text/x-upper")  # type: ignore[attr-defined]
    return pb.ProcessResponse(id=request.id, outputs=[out])  # type: ignore[attr-defined]


class Upper(pb_grpc.AlgoServicer):
    async def Process(self, request: Any, context: Any) -> Any:
        return _answer(request)

    async def ProcessStream(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for request in requests:
            yield _answer(request)


async def start_grpc_algo(port: int) -> grpc.aio.Server:
    server = grpc.aio.server()
    pb_grpc.add_AlgoServicer_to_server(Upper(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server
