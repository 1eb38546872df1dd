"""The pure parts of the multi-worker runner: what each worker is told, the pod's exit code, merged metrics."""

from __future__ import annotations

import socket
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from algorun.runner.config import RunnerOptions, load_config
from algorun.runner.pod_endpoint import exposition, merge_expositions
from algorun.runner.workers import exit_code, option_values, pod_exit_code, supervise, worker_env
from tests.support.runner_configs import names, runner_config


def test_a_worker_runs_the_supervisors_options_as_one_process_with_its_own_identity(tmp_path: Path) -> None:
    config = runner_config(names())
    base = {"PATH": "/bin", "ALGORUN_RUNNER_CONCURRENCY": "99", "ALGORUN_RUNNER_GROUP_INSTANCE_ID": "pod-a"}
    options = RunnerOptions.from_env(
        env=base,
        config=config,
        bus="kafka://b:9092",
        workers=3,
        concurrency=7,
        exactly_once=True,
        grace_seconds=4.5,
        instance="pod-a",
    )
    envs = [worker_env(base, config, options, i, tmp_path / f"{i}.port") for i in range(2)]
    seen = [RunnerOptions.from_env(env=env, config=load_config(env=env)) for env in envs]
    for i, got in enumerate(seen):
        assert got.workers == 1
        assert (got.bus, got.concurrency, got.exactly_once, got.grace_seconds) == ("kafka://b:9092", 7, True, 4.5)
        assert (got.health_host, got.health_port) == ("127.0.0.1", 0)
        assert envs[i]["PATH"] == "/bin"
    assert load_config(env=envs[0]) == config
    # Distinct transactional ids (exactly-once) and static membership ids, or the workers fence each other.
    assert seen[0].instance != seen[1].instance
    assert {e["ALGORUN_RUNNER_GROUP_INSTANCE_ID"] for e in envs} == {"pod-a-w0", "pod-a-w1"}
    own = {"instance", "workers", "health_host", "health_port", "group_instance_id"}
    assert {k: v for k, v in option_values(seen[0]).items() if k not in own} == {
        k: v for k, v in option_values(options).items() if k not in own
    }


def test_the_pod_exits_with_the_code_of_the_worker_that_ended_by_itself() -> None:
    assert exit_code(-9) == 137
    assert exit_code(3) == 3
    assert pod_exit_code(137, [137, 0]) == 137
    assert pod_exit_code(0, [0, 0]) == 1, "a worker that stops unasked leaves its partitions: not a success"
    assert pod_exit_code(None, [0, 0]) == 0
    assert pod_exit_code(None, [0, 3]) == 3


def _worker(ok: int, in_flight: int, lag: int, bucket: int) -> str:
    return f"""# HELP algorunner_messages_total Consumed messages
# TYPE algorunner_messages_total counter
algorunner_messages_total{{input="in",outcome="ok"}} {ok}
# HELP algorunner_in_flight_messages In flight
# TYPE algorunner_in_flight_messages gauge
algorunner_in_flight_messages {in_flight}
# HELP algorunner_consumer_lag Lag
# TYPE algorunner_consumer_lag gauge
algorunner_consumer_lag{{topic="in",partition="0"}} {lag}
# HELP algorunner_run_duration_seconds Runs
# TYPE algorunner_run_duration_seconds histogram
algorunner_run_duration_seconds_bucket{{le="0.005"}} {bucket}
algorunner_run_duration_seconds_bucket{{le="+Inf"}} {ok}
algorunner_run_duration_seconds_sum 1.5
algorunner_run_duration_seconds_count {ok}
# HELP process_start_time_seconds Start
# TYPE process_start_time_seconds gauge
process_start_time_seconds {100 + ok}
"""


def test_merged_metrics_are_the_pods_sums_and_shared_figures_are_not_added() -> None:
    text = exposition(merge_expositions([_worker(10, 1, 50, 7), _worker(32, 2, 48, 30)])).decode()
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }
    assert got[("algorunner_messages_total", (("input", "in"), ("outcome", "ok")))] == 42
    assert got[("algorunner_in_flight_messages", ())] == 3
    assert got[("algorunner_run_duration_seconds_bucket", (("le", "0.005"),))] == 37
    assert got[("algorunner_run_duration_seconds_count", ())] == 42
    assert got[("algorunner_run_duration_seconds_sum", ())] == 3.0
    assert got[("algorunner_consumer_lag", (("partition", "0"), ("topic", "in")))] == 50, "one group, one lag"
    assert got[("process_start_time_seconds", ())] == 110


async def test_a_pod_whose_health_port_is_taken_exits_2_before_starting_workers() -> None:
    config = runner_config(names())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = RunnerOptions.from_env(env={}, config=config, workers=2, health_host="127.0.0.1", health_port=port)
        assert await supervise(config, options) == 2
