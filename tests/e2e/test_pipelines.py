"""Example pipelines as pods: the operator installed by the chart deploys them, data goes in through the
endpoint's Service and comes out at a webhook outside the cluster, the same as `algorun run` gives."""

from __future__ import annotations

import collections
import time
from pathlib import Path

from tests.integration.local.harness import run_until_idle
from tests.integration.local.harness import webhook_receiver as local_receiver
from tests.support.e2e import Operator, Receiver, eventually, post
from tests.support.examples import EXAMPLES


def _bodies(deliveries: list[dict[str, object]]) -> collections.Counter[tuple[str, str]]:
    return collections.Counter((str(d["path"]), str(d["body"])) for d in deliveries)


def test_text_transform_runs_as_pods_and_gives_what_algorun_run_gives(
    operator: Operator, receiver: Receiver, tmp_path: Path
) -> None:
    namespace = operator.api.create_namespace("e2e-text")
    pd = operator.prepare("text-transform", receiver)
    began = time.monotonic()
    operator.apply(pd, namespace)
    operator.wait_deployed(namespace, pd["metadata"]["name"])
    print(f"text-transform Deployed and Ready in {time.monotonic() - began:.1f}s")

    text = (EXAMPLES / "text-transform" / "input.txt").read_bytes()
    url = f"{operator.endpoint_url(namespace)}/demo/text-transform/text"
    status, answer = post(url, text, "text/plain")
    assert status in (200, 202), answer
    deliveries = eventually(
        lambda: (lambda d: d if len(d) >= 2 else None)(receiver.deliveries("/results")),
        120,
        "both outputs at the webhook",
        lambda: operator.describe(namespace, pd["metadata"]["name"]),
    )

    with local_receiver(tmp_path) as local:
        run = run_until_idle(
            [EXAMPLES / "text-transform" / "pipeline.yaml"],
            tmp_path / "state",
            inputs=[f"text={EXAMPLES / 'text-transform' / 'input.txt'}"],
        )
        assert run.returncode == 0, run.stdout + run.stderr
        expected = local.deliveries()
    assert _bodies(deliveries) == _bodies(expected)
