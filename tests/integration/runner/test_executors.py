"""Each executor against a small real algo (aiohttp server, gRPC server, shell and Python scripts), no bus."""

from __future__ import annotations

import asyncio
import os
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from typing import Any

import pytest

from algorun.api.configs import RunnerConfig
from algorun.runner.executors import create
from algorun.runner.executors.base import Executor
from algorun.runner.model import AlgoFailure, AlgoUnavailable, Output, Part, Request
from tests.algos.grpc_algo import start_grpc_algo
from tests.algos.http_algo import start_http_algo
from tests.support.procs import free_port
from tests.support.runner_configs import names, runner_config
from tests.support.runner_harness import options

PY = sys.executable


def request(config: RunnerConfig, *parts: bytes, trace: str = "ab" * 16, params: str | None = None) -> Request:
    return Request(
        trace_id=trace,
        input=config.inputs[0],
        parts=[Part(p, "text/plain", f"f{i}.txt") for i, p in enumerate(parts)],
        parameters=config.parameters,
        endpoint_params=params,
        headers={"traceID": trace},
    )


async def started(config: RunnerConfig, **opts: Any) -> Executor:
    ex = create(config, options(**opts))
    await ex.start()
    return ex


# ---- http ----


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    port = free_port()
    runner = await start_http_algo(port)
    try:
        yield port
    finally:
        await runner.cleanup()


def http_config(port: int, path: str = "/upper", **kw: Any) -> RunnerConfig:
    return runner_config(
        names(),
        executor="http",
        entrypoint=None,
        input_type="Http",
        input_extra={"http": {"verb": "POST", "port": port, "path": path, "headers": {"X-Echo-Query": "1"}}},
        outputs=[{"name": "out", "outputDeliveryType": "HttpResponse", "topic": "t"}],
        **kw,
    )


async def test_http_any_2xx_is_success_and_every_part_is_sent(http_port: int) -> None:
    config = http_config(http_port, parameters=[{"name": "mode", "value": "fast"}])
    ex = await started(config)
    try:
        assert await ex.check() is None
        outs = await ex.run(request(config, b"a", b"b", params="MODE=slow&extra=1"))
        assert [o.payload() for o in outs] == [b"A?MODE=slow&extra=1", b"B?MODE=slow&extra=1"]
        assert outs[0].content_type == "text/x-upper"
        created = await started(http_config(http_port, "/created"))
        assert [o.payload() for o in await created.run(request(config, b"x"))] == [b"x"]
        await created.close()
        with pytest.raises(AlgoFailure, match="answered 500: poison is not food"):
            await ex.run(request(config, b"poison"))
    finally:
        await ex.close()


async def test_http_unreachable_algo_is_unavailable_not_failed() -> None:
    config = http_config(free_port())
    ex = await started(config)
    try:
        assert "not reachable" in (await ex.check() or "")
        with pytest.raises(AlgoUnavailable):
            await ex.run(request(config, b"a"))
    finally:
        await ex.close()


# ---- grpc ----


@pytest.mark.parametrize("mode", ["unary", "stream"])
async def test_grpc_unary_and_stream(mode: str) -> None:
    port = free_port()
    server = await start_grpc_algo(port)
    config = runner_config(
        names(), executor="grpc", entrypoint=None, input_type="Grpc", input_extra={"grpc": {"port": port}}
    )
    ex = await started(config, grpc_mode=mode)
    try:
        assert await ex.check() is None
        results = await asyncio.gather(*(ex.run(request(config, f"m{i}".encode(), b"!")) for i in range(20)))
        assert [r[0].payload() for r in results] == [f"M{i}!".encode() for i in range(20)]
        assert results[0][0].name == "out"
        with pytest.raises(AlgoFailure, match="poison is not food"):
            await ex.run(request(config, b"poison"))
    finally:
        await ex.close()
        await server.stop(None)


async def test_grpc_server_down_is_unavailable() -> None:
    config = runner_config(
        names(), executor="grpc", entrypoint=None, input_type="Grpc", input_extra={"grpc": {"port": free_port()}}
    )
    ex = await started(config)
    try:
        assert await ex.check() is not None
        with pytest.raises(AlgoUnavailable):
            await ex.run(request(config, b"a"))
    finally:
        await ex.close()


# ---- python ----


async def test_python_async_function_with_context() -> None:
    config = runner_config(names(), entrypoint="tests.algos.pyalgos:async_upper")
    ex = await started(config)
    outs = await ex.run(request(config, b"a", b"b"))
    assert outs == [Output("out", b"AB|" + b"ab" * 16 + b"|in")]
    none = await started(runner_config(names(), entrypoint="tests.algos.pyalgos:nothing"))
    assert await none.run(request(config, b"a")) == []


# ---- Executable, per message ----


def exec_config(entrypoint: str, **kw: Any) -> RunnerConfig:
    return runner_config(names(), executor="Executable", entrypoint=entrypoint, **kw)


async def test_exec_stdin_stdout_and_failures() -> None:
    config = exec_config("tests/algos/exec_upper.sh")
    ex = await started(config)
    assert await ex.check() is None
    assert [o.payload() for o in await ex.run(request(config, b"hello ", b"world"))] == [b"HELLO WORLD"]
    with pytest.raises(AlgoFailure, match="exited with status 3: poison is not food"):
        await ex.run(request(config, b"poison"))
    strict = await started(exec_config(f"{PY} -c 'import sys; sys.stderr.write(\"warn\")'"), stderr_policy="fail")
    with pytest.raises(AlgoFailure, match="wrote to stderr"):
        await strict.run(request(config, b"x"))
    lenient = await started(exec_config(f"{PY} -c 'import sys; sys.stderr.write(\"warn\")'"))
    assert await lenient.run(request(config, b"x")) == [Output("out", b"", content_type="text/plain")]


@pytest.mark.parametrize("data", [b"", b"input the algo never reads"])
def test_exec_an_algo_that_exits_before_its_input_is_written_is_judged_by_its_exit(data: bytes) -> None:
    """On uvloop (the runner's loop) `communicate` raises RuntimeError when the process is gone before its stdin
    is written, which the runner counts as an internal error (the message never committed). Here the process
    has exited and been reaped before the exchange begins, the widest form of that race."""
    import uvloop

    from algorun.runner.executors.executable import exchange

    async def scenario() -> tuple[bytes, bytes, int | None]:
        proc = await asyncio.create_subprocess_exec("sh", "-c", "echo done", stdin=PIPE, stdout=PIPE, stderr=PIPE)
        await proc.wait()
        stdout, stderr = await exchange(proc, data)
        return stdout, stderr, proc.returncode

    assert uvloop.run(scenario()) == (b"done\n", b"", 0)


async def test_exec_timeout_kills_the_process_group() -> None:
    config = exec_config("sh -c 'sleep 30 & sleep 30'", timeout=1)
    ex = await started(config)
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(AlgoFailure, match="timeout"):
        await ex.run(request(config, b""))
    assert loop.time() - began < 10


async def test_exec_large_input_and_output_do_not_deadlock() -> None:
    config = exec_config("cat")
    ex = await started(config)
    big = os.urandom(8 * 1024 * 1024)
    outs = await asyncio.wait_for(ex.run(request(config, big)), 30)
    assert outs[0].payload() == big


async def test_exec_files_in_and_out_parameters_in_sort_order_and_inherited_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("ALGORUN_TEST_INHERITED", "yes")
    outputs = [
        {"name": "file", "outputDeliveryType": "FileParameter", "parameter": "--out", "topic": "a"},
        {"name": "folder", "outputDeliveryType": "FolderParameter", "parameter": "--dir", "topic": "b"},
        {"name": "log", "outputDeliveryType": "StdOut", "topic": "c"},
    ]
    params = [{"name": "--argv", "sortOrder": 1}, {"name": "--flag", "value": "v", "sortOrder": 0}]
    for kind, extra in [
        ("FileParameter", {"fileParameter": {"parameter": "--in"}}),
        ("FileArrayParameter", {"fileParameter": {"parameter": "--in"}}),
        ("FileArrayParameter", {"fileParameter": {"parameter": "--joined", "delimiter": ","}}),
    ]:
        config = exec_config(
            f"{PY} tests/algos/exec_files.py", input_type=kind, input_extra=extra, outputs=outputs, parameters=params
        )
        ex = await started(config, data_dir=tmp_path / "data")
        outs = {(o.name, o.file_name): o.payload() for o in await ex.run(request(config, b"one", b"two"))}
        assert outs[("file", "ab" * 16)] == b"ONETWO"
        assert outs[("folder", "part-0.txt")] == b"ONE"
        assert outs[("folder", "part-1.txt")] == b"TWO"
        import json

        log = json.loads(outs[("log", None)])
        assert log["inherited"] == "yes"
        assert log["argv"][:3] == ["--flag", "v", "--argv"]  # sortOrder
        assert list((tmp_path / "data").iterdir()) == []  # run directories are removed


async def test_exec_environment_variable_input() -> None:
    config = exec_config(
        f"{PY} tests/algos/exec_files.py --env PAYLOAD",
        input_type="EnvironmentVariable",
        input_extra={"environmentVariable": "PAYLOAD"},
        outputs=[{"name": "file", "outputDeliveryType": "FileParameter", "parameter": "--out", "topic": "a"}],
    )
    ex = await started(config)
    outs = await ex.run(request(config, b"env-data"))
    assert [o.payload() for o in outs] == [b"ENV-DATA"]


# ---- Executable, streaming ----


async def test_streaming_exec_pipelines_frames_and_survives_crashes() -> None:
    config = exec_config(f"{PY} tests/algos/exec_stream.py", timeout=2)
    ex = await started(config, exec_mode="streaming", stream_window=8)
    try:
        assert await ex.check() is None
        results = await asyncio.gather(*(ex.run(request(config, f"m{i}".encode())) for i in range(100)))
        assert [r[0].payload() for r in results] == [f"M{i}".encode() for i in range(100)]
        with pytest.raises(AlgoFailure, match="poison is not food"):
            await ex.run(request(config, b"poison"))
        with pytest.raises(AlgoFailure, match="exited with status 7"):
            await ex.run(request(config, b"crash"))
        assert [o.payload() for o in await ex.run(request(config, b"back"))] == [b"BACK"]
        with pytest.raises(AlgoFailure, match="no response within"):
            await ex.run(request(config, b"slow"))
        assert [o.payload() for o in await ex.run(request(config, b"again"))] == [b"AGAIN"]
    finally:
        await ex.close()
