"""Runner configs for tests, built the way `algorun.api.configs.runner_config` shapes them."""

from __future__ import annotations

import uuid
from typing import Any

from algorun.api.configs import RunnerConfig


def names(prefix: str = "rt") -> dict[str, str]:
    """Unique topic names for one test: input, output, DLQ, retry topics by backoff."""
    u = uuid.uuid4().hex[:8]
    return {
        "input": f"{prefix}-{u}-in",
        "output": f"{prefix}-{u}-out",
        "dlq": f"{prefix}-{u}-dlq",
        "retry": f"{prefix}-{u}-retry",
        "group": f"{prefix}-{u}-group",
    }


def runner_config(
    n: dict[str, str],
    *,
    executor: str = "python",
    entrypoint: str | None = "tests.algos.pyalgos:upper",
    input_type: str = "StdIn",
    input_extra: dict[str, Any] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    retry: dict[str, Any] | None = None,
    retry_topics: dict[str, str] | None = None,
    retry_enabled: bool | None = None,
    timeout: int | None = None,
    parameters: list[dict[str, Any]] | None = None,
    input_topics: list[str] | None = None,
    data_type: str = "Embedded",
) -> RunnerConfig:
    outs = (
        outputs
        if outputs is not None
        else [{"name": "out", "outputDeliveryType": "StdOut", "contentType": "text/plain", "topic": n["output"]}]
    )
    raw: dict[str, Any] = {
        "identity": {
            "deploymentOwner": "test",
            "deploymentName": "runner",
            "pipelineOwner": "test",
            "pipelineName": "runner",
        },
        "owner": "test",
        "name": "algo",
        "version": "1",
        "index": 1,
        "fullName": "test/algo:1[1]",
        "executor": executor,
        "entrypoint": entrypoint,
        "parameters": parameters or [],
        "inputs": [
            {
                "name": "in",
                "inputDeliveryType": input_type,
                "contentTypes": ["text/plain"],
                **(input_extra or {}),
                "topics": [
                    {
                        "topic": t,
                        "sourceName": "Endpoint",
                        "sourceOutputName": "in",
                        "messageDataType": data_type,
                    }
                    for t in (input_topics or [n["input"]])
                ],
            }
        ],
        "outputs": outs,
        "timeoutSeconds": timeout,
        "consumerGroup": n["group"],
        "retry": {
            "enabled": retry_enabled if retry_enabled is not None else retry is not None,
            "strategy": retry,
            "retryTopics": retry_topics or {},
            "deadLetterTopic": n["dlq"],
        },
    }
    return RunnerConfig.model_validate(raw)
