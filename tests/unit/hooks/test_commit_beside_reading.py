"""The hook runner goes on reading and delivering while a commit is on its way to the broker: a commit that takes
long (a slow broker, a loaded machine) does not hold the messages that arrive meanwhile, and commits still go one
at a time.

Runs on the embedded local log with a real webhook receiver; the consumer's commits wait at a gate the test
opens, as a slow broker's would."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from algorun.api.configs import HookTarget
from algorun.bus import Bus, TopicSpec, open_bus
from tests.support.gated_commits import GatedBus
from tests.support.hook_receiver import Receiver
from tests.support.hook_runner import hook_config, produce, running_hooks
from tests.support.waiting import wait_until

TOPIC, DLQ = "results", "results-dlq"
WAIT_S = 10.0


async def test_deliveries_go_on_while_a_commit_waits_for_the_broker(tmp_path: Path) -> None:
    bus = open_bus(f"local://{tmp_path / 'log.db'}")
    receiver = Receiver()
    await receiver.start()
    try:
        await bus.create_topics([TopicSpec(TOPIC, 1), TopicSpec(DLQ, 1)])
        gated_bus = GatedBus(bus)
        hook = HookTarget(pipeline_hook_input_name="results", web_hook_url=f"http://127.0.0.1:{receiver.port}/")
        config = hook_config({"results": [TOPIC]}, DLQ, [hook])
        async with running_hooks(cast(Bus, gated_bus), config, {}):
            gated = gated_bus.gated
            assert gated is not None
            try:
                await produce(bus, TOPIC, 1, prefix="first")
                await wait_until(lambda: len(receiver.accepted) >= 1, WAIT_S, "the first delivery")
                await wait_until(lambda: gated.started >= 1, WAIT_S, "a commit to start (it then waits at the gate)")

                await produce(bus, TOPIC, 1, prefix="second")
                await wait_until(lambda: len(receiver.accepted) >= 2, WAIT_S, "the second delivery, the commit held")
                assert gated.running == 1, "the first commit is still on its way"
                assert gated.most_at_once == 1, "commits go one at a time"
            finally:
                gated.gate.set()  # also when it failed: the runner's stop commits, and must get through
        assert gated.most_at_once == 1
    finally:
        await receiver.stop()
        await bus.close()
