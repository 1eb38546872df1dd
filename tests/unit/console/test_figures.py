"""The console's figures: Prometheus counters summed, rates from two samples, one sample per interval."""

from __future__ import annotations

import asyncio

from algorun.console.figures import EdgeSample, NodeSample, Poller, Sample, figures_json
from algorun.console.metrics import counters

RUNNER_TEXT = """\
# TYPE algorunner_algo_error counter
algorunner_algo_error_total{algo="a"} 3.0
algorunner_algo_error_created{algo="a"} 1.7e9
# TYPE algorunner_retry counter
algorunner_retry_total{step="0",repeat="1"} 2.0
algorunner_retry_total{step="1",repeat="1"} 1.0
# TYPE something_else counter
something_else_total 99.0
"""


def test_counters_sum_total_samples_only() -> None:
    assert counters(RUNNER_TEXT) == {"errors": 3.0, "retries": 3.0, "deliveries": 0.0, "consumed": 0.0, "produced": 0.0}


def test_rates_are_count_differences_over_the_time_between_samples() -> None:
    before = Sample(taken=10.0, nodes={"a": NodeSample(count_in=10, count_out=4)}, edges={"e": EdgeSample(count=4)})
    after = Sample(taken=12.0, nodes={"a": NodeSample(count_in=30, count_out=4)}, edges={"e": EdgeSample(count=10)})
    shown = figures_json(after, before, 2.0)
    assert shown["nodes"]["a"]["rateIn"] == 10.0
    assert shown["nodes"]["a"]["rateOut"] == 0.0
    assert shown["edges"]["e"]["rate"] == 3.0
    assert figures_json(after, None, 2.0)["nodes"]["a"]["rateIn"] is None


async def test_concurrent_askers_share_one_sample_per_interval() -> None:
    taken = 0

    async def sample() -> Sample:
        nonlocal taken
        taken += 1
        await asyncio.sleep(0)
        return Sample(taken=asyncio.get_running_loop().time())

    poller = Poller(sample, interval=60.0)
    await asyncio.gather(*(poller.latest() for _ in range(20)))
    await poller.latest()
    assert taken == 1
