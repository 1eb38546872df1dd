"""The `http` executor: each part is one request to the algo's local server, `{verb} http(s)://localhost:{port}{path}`.

Any 2xx is success, every staged part is sent, configured headers are sent, `Https` verifies against a
configurable CA (`http.caFile`), and connection failures mean "algo unavailable" (wait, then rerun), not a failed
message. Keep-alive connections
are pooled, at most `concurrency` at once.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import parse_qsl

import aiohttp

from algorun.api.configs import RunnerConfig, RunnerInput
from algorun.api.enums import InputDeliveryType, OutputDeliveryType
from algorun.runner.config import RunnerOptions
from algorun.runner.executors.base import Executor
from algorun.runner.model import MAX_BROKEN_RUNS, AlgoFailure, AlgoUnavailable, Output, Request

DEFAULT_TIMEOUT_S = 10.0
MAX_ERROR_BODY = 1000


def query_params(parameters: list[tuple[str, str]], endpoint_params: str | None) -> list[tuple[str, str]]:
    """Configured parameters, each overridden by an endpoint parameter of the same name (case-insensitive),
    then the endpoint parameters that match none (they are passed on too)."""
    given = parse_qsl(endpoint_params or "", keep_blank_values=True)
    by_name = {k.lower(): (k, v) for k, v in given}
    out: list[tuple[str, str]] = []
    for name, value in parameters:
        override = by_name.pop(name.lower(), None)
        out.append(override if override is not None else (name, value))
    out.extend(by_name.values())
    return out


class _Target:
    def __init__(self, algo_input: RunnerInput, host: str) -> None:
        http = algo_input.http
        if http is None or http.port is None:
            raise ValueError(f"input {algo_input.name!r}: an http input needs http.port")
        secure = algo_input.input_delivery_type == InputDeliveryType.HTTPS
        path = http.path or "/"
        if not path.startswith("/"):
            path = "/" + path
        self.host = host
        self.port = http.port
        self.url = f"{'https' if secure else 'http'}://{host}:{http.port}{path}"
        self.method = (http.verb or "POST").upper()
        self.headers = dict(http.headers or {})
        self.secure = secure
        # One context per target, made once: the readiness check's handshake and the requests share it.
        self.ssl: ssl.SSLContext | bool = True
        if secure:
            self.ssl = ssl.create_default_context(cafile=http.ca_file or None)
        self.default_type = algo_input.content_types[0] if algo_input.content_types else None


class HttpExecutor(Executor):
    """Sends each part of a run to the algo's local HTTP server over pooled keep-alive connections; any 2xx is
    success, and a connection that cannot be made or breaks means the algo is unavailable, not that it failed."""

    def __init__(self, config: RunnerConfig, options: RunnerOptions, host: str = "127.0.0.1") -> None:
        super().__init__(config)
        self._targets = {i.name: _Target(i, host) for i in config.inputs}
        if not self._targets:
            raise ValueError("the http executor needs at least one Http/Https input")
        self._limit = options.concurrency
        self._timeout = float(config.timeout_seconds) if config.timeout_seconds else DEFAULT_TIMEOUT_S
        self._session: aiohttp.ClientSession | None = None
        self._params = [(p.name, p.value or "") for p in config.parameters]

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=30, ttl_dns_cache=None)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
        )

    async def check(self) -> str | None:
        """Reachable: a TCP connection, and for `Https` a TLS handshake verified as requests verify it (a wrong
        CA then shows here, as the reason the runner is not ready, instead of failing every request)."""
        for name, t in self._targets.items():
            try:
                async with asyncio.timeout(1.0):
                    if t.secure:
                        _, writer = await asyncio.open_connection(t.host, t.port, ssl=t.ssl)
                    else:
                        _, writer = await asyncio.open_connection(t.host, t.port)
                writer.close()
            except ssl.SSLError as e:
                return f"input {name}: TLS with the algo at {t.host}:{t.port} failed: {e.reason or e}"
            except (OSError, TimeoutError) as e:
                return f"input {name}: algo not reachable at {t.host}:{t.port} ({e.__class__.__name__})"
        return None

    async def run(self, request: Request) -> list[Output]:
        session = self._session
        assert session is not None, "start() first"
        target = self._targets[request.input.name]
        output = self.output_for(OutputDeliveryType.HTTP_RESPONSE, input_name=request.input.name)
        # No query at all is the common case: passing params=None skips building a URL per request.
        params = (
            query_params(self._params, request.endpoint_params) if self._params or request.endpoint_params else None
        )
        outputs: list[Output] = []
        for part in request.parts:
            headers = dict(target.headers)
            content_type = part.content_type or target.default_type
            if content_type:
                headers["Content-Type"] = content_type
            for name in ("traceID", "traceparent"):
                if name in request.headers:
                    headers.setdefault(name, request.headers[name])
            try:
                async with asyncio.timeout(self._timeout):
                    async with session.request(
                        target.method,
                        target.url,
                        params=params or None,
                        data=part.data,
                        headers=headers,
                        ssl=target.ssl,
                    ) as resp:
                        body = await resp.read()
                        status = resp.status
                        resp_type = resp.headers.get("Content-Type")
            except TimeoutError:
                raise AlgoFailure(
                    f"{target.method} {target.url}: no response within {self._timeout}s", "Timeout"
                ) from None
            except aiohttp.ClientConnectorError as e:
                raise AlgoUnavailable(f"{target.url}: {e}") from e
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as e:
                # An answer cut short (its head sent, its body not) is the connection breaking too: a stopping
                # algo's process can end at any byte of it.
                raise await self._broken(target.url, e) from e
            except aiohttp.ClientError as e:
                raise AlgoFailure(f"{target.method} {target.url}: {e.__class__.__name__}: {e}", "HttpError") from e
            if not 200 <= status < 300:
                text = body[:MAX_ERROR_BODY].decode("utf-8", "replace")
                raise AlgoFailure(f"{target.method} {target.url} answered {status}: {text}", f"HttpStatus{status}")
            if output is not None and status != 204:
                outputs.append(Output(output.name, body, content_type=resp_type or output.content_type))
        return outputs

    async def _broken(self, url: str, error: Exception) -> AlgoUnavailable:
        """A connection that broke after it was made, before or during the answer: the algo went away (its
        container stopping, restarting or deleted with its pod) or dropped this one request. Either way the run
        waits and reruns (at a stop its offset stays uncommitted, for the replacement), so no message is
        dead-lettered for an algo's restart; when the algo still accepts connections, `broke` is the failure it
        becomes if it keeps happening (see AlgoUnavailable)."""
        detail = f"{error.__class__.__name__}: {error}"
        reason = await self.check()
        if reason is not None:
            return AlgoUnavailable(f"{url}: {detail}; then {reason}")
        failure = AlgoFailure(
            f"{url}: {detail}, in {MAX_BROKEN_RUNS} runs while the algo stayed reachable", "HttpError"
        )
        return AlgoUnavailable(f"{url}: {detail} (the algo stayed reachable)", broke=failure)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
