"""The `python` executor: an in-process callable named `module:function`, sync or async (the fastest path:
no process, no socket, no copy).

    def algo(data: bytes) -> bytes | str | None: ...
    async def algo(data: bytes, context: Context) -> bytes | dict[str, bytes] | None: ...

`data` is the run's parts concatenated; `context` (passed when the function takes a second parameter) has the
trace id, the parts, parameters and endpoint parameters. A return of bytes/str goes to the algo's first output,
a dict to the outputs it names, None to no output. An exception is a failure (retried, then dead-lettered).
A sync function runs on the event loop, unless the algo has a timeout, then in a worker thread so the timeout
can be reported (the thread itself cannot be stopped).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from algorun.api.configs import RunnerConfig
from algorun.runner.config import RunnerOptions
from algorun.runner.executors.base import Executor
from algorun.runner.model import AlgoFailure, Output, Part, Request


@dataclass(slots=True)
class Context:
    """What a python algo that takes a second parameter is told about its run: the trace, the input, the parts
    and the parameters (module docstring)."""

    trace_id: str
    input: str
    content_type: str | None
    parts: list[Part]
    parameters: dict[str, str] = field(default_factory=dict)
    endpoint_params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def load_callable(entrypoint: str, workdir: str | None = None) -> Callable[..., Any]:
    """Import `module:function` (dotted attributes allowed), with `workdir` importable first."""
    module_name, sep, attr = entrypoint.strip().partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"python entrypoint {entrypoint!r}: expected module:function, e.g. textops:reverse")
    if workdir and workdir not in sys.path:
        sys.path.insert(0, workdir)
    module = importlib.import_module(module_name)
    target: Any = module
    for name in attr.split("."):
        target = getattr(target, name)
    if not callable(target):
        raise ValueError(f"python entrypoint {entrypoint!r} is not callable")
    return target  # type: ignore[no-any-return]


def _wants_context(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


class PythonExecutor(Executor):
    """Calls the `module:function` entrypoint in this process, sync or async; an exception is the message's
    failure."""

    def __init__(self, config: RunnerConfig, options: RunnerOptions) -> None:
        super().__init__(config)
        if not config.entrypoint:
            raise ValueError("the python executor needs the version's entrypoint (module:function)")
        self._entrypoint = config.entrypoint
        self._workdir = str(options.workdir)
        self._fn: Callable[..., Any] | None = None
        self._is_async = False
        self._context = False
        self._timeout = config.timeout_seconds or None
        self._first_output = config.outputs[0].name if config.outputs else None

    async def start(self) -> None:
        fn = load_callable(self._entrypoint, self._workdir)
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
        self._context = _wants_context(fn)

    def sync_runner(self) -> Callable[[Request], list[Output]] | None:
        """A sync function without a timeout runs on the event loop anyway: let the runner call it inline."""
        if self._fn is None or self._is_async or self._timeout:
            return None
        return self._run_sync

    def payload_runner(self) -> Callable[[bytes], bytes | list[Output]] | None:
        if self.sync_runner() is None or self._context:
            return None
        return self._run_payload

    def _run_payload(self, data: bytes) -> bytes | list[Output]:
        fn = self._fn
        assert fn is not None, "start() first"
        try:
            result = fn(data)
        except Exception as e:
            detail = "".join(traceback.format_exception_only(e)).strip()
            raise AlgoFailure(f"{self._entrypoint} raised {detail}", type(e).__name__) from e
        if type(result) is bytes and self._first_output is not None:
            return result
        return self._outputs(result)

    def _run_sync(self, request: Request) -> list[Output]:
        fn = self._fn
        assert fn is not None, "start() first"
        parts = request.parts
        data = parts[0].data if len(parts) == 1 else b"".join(p.data for p in parts)
        try:
            result = fn(data, self._make_context(request)) if self._context else fn(data)
        except Exception as e:
            detail = "".join(traceback.format_exception_only(e)).strip()
            raise AlgoFailure(f"{self._entrypoint} raised {detail}", type(e).__name__) from e
        return self._outputs(result)

    async def run(self, request: Request) -> list[Output]:
        fn = self._fn
        assert fn is not None, "start() first"
        parts = request.parts
        data = parts[0].data if len(parts) == 1 else b"".join(p.data for p in parts)
        args: tuple[Any, ...] = (data,)
        if self._context:
            args = (data, self._make_context(request))
        try:
            if self._is_async:
                coro = fn(*args)
                result = await (asyncio.wait_for(coro, self._timeout) if self._timeout else coro)
            elif self._timeout:
                result = await asyncio.wait_for(asyncio.to_thread(fn, *args), self._timeout)
            else:
                result = fn(*args)
        except TimeoutError:
            raise AlgoFailure(f"{self._entrypoint} did not return within {self._timeout}s", "Timeout") from None
        except Exception as e:
            detail = "".join(traceback.format_exception_only(e)).strip()
            raise AlgoFailure(f"{self._entrypoint} raised {detail}", type(e).__name__) from e
        return self._outputs(result)

    def _make_context(self, request: Request) -> Context:
        return Context(
            trace_id=request.trace_id,
            input=request.input.name,
            content_type=request.parts[-1].content_type if request.parts else None,
            parts=request.parts,
            parameters={p.name: p.value or "" for p in request.parameters},
            endpoint_params=dict(parse_qsl(request.endpoint_params or "", keep_blank_values=True)),
            headers=request.headers,
        )

    def _outputs(self, result: Any) -> list[Output]:
        if result is None:
            return []
        if type(result) is bytes:  # the common case first: isinstance against a union is slower
            return [Output(self._first_output, result)] if self._first_output is not None else []
        if isinstance(result, bytes | bytearray | memoryview | str):
            if self._first_output is None:
                return []
            return [Output(self._first_output, _bytes(result))]
        if isinstance(result, dict):
            known = {o.name for o in self.config.outputs}
            unknown = sorted(set(result) - known)
            if unknown:
                raise AlgoFailure(f"{self._entrypoint} returned unknown outputs {unknown}; known: {sorted(known)}")
            return [Output(str(k), _bytes(v)) for k, v in result.items() if v is not None]
        raise AlgoFailure(
            f"{self._entrypoint} returned {type(result).__name__}; expected bytes, str, dict or None", "BadResult"
        )


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise AlgoFailure(f"an output value must be bytes or str, not {type(value).__name__}", "BadResult")
