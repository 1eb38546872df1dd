"""The console of `algorun run` on the retry-dead-letter example, in a real browser: the graph, moving figures,
a poisoned message as a dead letter with its error, its replay from the page, a stopped step, bad input.

The tests share one running pipeline and run in file order (the stopped-step test comes last: it pauses a
process). Waits are on conditions in the page, never sleeps.
"""

from __future__ import annotations

import json
import os
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from algorun.api import load_pipeline
from tests.support.local_mode import Receiver, post, running_pipeline, webhook_receiver
from tests.support.paths import EXAMPLES
from tests.support.procs import ManagedProcess, free_ports, wait_for

pytestmark = pytest.mark.timeout(300)

FOLDER = EXAMPLES / "retry-dead-letter"
ALGO = "algo:shop/charge:1[1]"


@dataclass
class Running:
    process: ManagedProcess
    console: str
    """The console's URL as `algorun run` printed it."""
    endpoint: str
    receiver: Receiver

    def api(self, path: str) -> Any:
        import urllib.request

        with urllib.request.urlopen(self.console.split("#")[0].rstrip("/") + path, timeout=10) as response:
            return json.loads(response.read())


def with_free_algo_port(pipeline: Path, algo_port: int) -> Path:
    """The example with its algo moved to a free port (other runs of the examples on this machine hold 9000)."""
    pipeline.write_text(pipeline.read_text().replace("9000", str(algo_port)))
    return pipeline


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("console")
    log = tmp / "run.log"
    algo_port, console_port = free_ports(2)
    extra = ["--console-port", str(console_port)]
    with webhook_receiver(tmp) as receiver:
        pipeline = with_free_algo_port(receiver.examples / "retry-dead-letter" / "pipeline.yaml", algo_port)
        with running_pipeline([pipeline], tmp / "state", log, extra=extra) as (process, ports):
            printed = wait_for(
                lambda: re.search(r"console: (http://\S+)", log.read_text()),
                timeout=30,
                what="the console's URL in algorun run's output",
                proc=process,
            )
            endpoint = f"http://127.0.0.1:{ports.http}/shop/payments/charges"
            yield Running(process, printed.group(1), endpoint, receiver)


def charge(running: Running, **fields: Any) -> dict[str, Any]:
    body = {"id": f"c-{uuid.uuid4().hex[:8]}", "amount": 5, **fields}
    return post(running.endpoint, json.dumps(body).encode(), "application/json")


def number(page: Any, selector: str, attribute: str) -> int:
    value = page.get_attribute(selector, attribute)
    return int(float(value)) if value else 0


def node(node_id: str) -> str:
    return f'[data-node-id="{node_id}"]'


def test_graph_shows_every_component_and_edge(page: Any, running: Running) -> None:
    _, topology = load_pipeline([FOLDER / "pipeline.yaml"])
    retry = topology.retry_plan(topology.algos[0])
    expected_nodes = {
        "endpoint:charges",
        ALGO,
        "hook:receipts",
        *(f"retry:{t}" for t in retry.retry_topics.values()),
        f"dead-letter:{retry.dead_letter_topic}",
        f"dead-letter:{topology.hook_dead_letter_topic()}",
    }
    page.goto(running.console)
    page.wait_for_selector(f'{node(ALGO)}[data-state="up"]')
    shown = set(page.eval_on_selector_all("[data-node-id]", "els => els.map(e => e.dataset.nodeId)"))
    assert shown == expected_nodes
    edges = page.eval_on_selector_all(
        "[data-edge-id]", "els => els.map(e => [e.dataset.source, e.dataset.target, e.getAttribute('class')])"
    )
    pairs = {(source, target) for source, target, _ in edges}
    assert ("endpoint:charges", ALGO) in pairs and (ALGO, "hook:receipts") in pairs
    for topic in retry.retry_topics.values():
        assert {(ALGO, f"retry:{topic}"), (f"retry:{topic}", ALGO)} <= pairs
    assert (ALGO, f"dead-letter:{retry.dead_letter_topic}") in pairs
    # Each pipe's edge is labelled with its topic.
    for pipe_topic in (t.name for t in topology.topics.values()):
        assert page.locator(f'.edge-topic:has(title:text-is("{pipe_topic}"))').count() == 1
    assert len(edges) == 2 * len(retry.retry_topics) + 1 + 1 + len(topology.spec.pipes)


def test_counters_and_rates_move_after_sending_data(page: Any, running: Running) -> None:
    page.goto(running.console)
    page.wait_for_selector(f'{node(ALGO)}[data-state="up"]')
    page.wait_for_selector(f"{node('hook:receipts')}[data-out]")
    before_in = number(page, node("endpoint:charges"), "data-out")
    before_out = number(page, node("hook:receipts"), "data-out")
    for _ in range(5):
        charge(running)
    page.wait_for_function(
        """([endpoint, hook, e, h]) =>
            Number(document.querySelector(endpoint).dataset.out) >= e + 5 &&
            Number(document.querySelector(hook).dataset.out) >= h + 5""",
        arg=[node("endpoint:charges"), node("hook:receipts"), before_in, before_out],
    )
    # A rate above zero showed on the algo (in the sample after the messages arrived).
    page.wait_for_function(
        "sel => /in [1-9]|in 0\\.[1-9]/.test(document.querySelector(sel).textContent)",
        arg=node(ALGO),
    )
    edge = page.locator('[data-edge-id="pipe0"]')
    assert int(edge.get_attribute("data-count") or 0) >= before_in + 5


def test_poisoned_message_shows_as_a_dead_letter_with_its_error(page: Any, running: Running) -> None:
    page.goto(running.console)
    page.click(node(ALGO))
    page.wait_for_selector("#panel-body h3")
    trace = charge(running, card="declined")["traceID"]
    letter = page.locator(f'.dead-letter[data-trace-id="{trace}"]')
    letter.wait_for(timeout=60_000)  # after the retries (500 ms, then 2 s twice) the panel refreshes by itself
    assert "402" in letter.locator(".dead-letter-error").inner_text()
    assert "card declined" in letter.locator(".dead-letter-error").inner_text()
    assert '"card": "declined"' in letter.locator(".preview").inner_text()
    assert "errorTopic" in letter.locator(".error-headers").inner_text()


def test_replay_from_the_console_runs_the_dead_letter_again(page: Any, running: Running) -> None:
    trace = charge(running, card="declined")["traceID"]
    page.goto(running.console)
    page.click(node(ALGO))
    letters = page.locator(f'.dead-letter[data-trace-id="{trace}"]')
    letters.first.wait_for(timeout=60_000)
    retries_before = number(page, node(ALGO), "data-retries")
    # Cancelled: nothing is replayed.
    letters.first.locator(".replay-one").click()
    page.click("#confirm-cancel")
    page.wait_for_selector('#replay-result:text("replay cancelled")')
    # Confirmed: the trace's dead letter goes back to the algo's first retry topic, runs its retries again and (the
    # card is still declined) lands in the dead-letter topic a second time.
    letters.first.locator(".replay-one").click()
    page.click("#confirm-ok")
    page.wait_for_selector('#replay-result:text("replayed 1")')
    page.wait_for_function(
        "([sel, n]) => document.querySelectorAll(sel).length >= n",
        arg=[f'.dead-letter[data-trace-id="{trace}"]', 2],
        timeout=60_000,
    )
    assert number(page, node(ALGO), "data-retries") > retries_before


def test_unknown_pipeline_is_said_in_the_page(page: Any, running: Running) -> None:
    page.goto(running.console.split("#")[0] + "#nobody/nothing")
    alert = page.locator("#message [role=alert]")
    alert.wait_for()
    assert "no pipeline 'nobody/nothing'" in alert.inner_text()
    assert page.locator('#message a[href="#shop/payments"]').count() == 1
    assert "Traceback" not in page.content()


def test_bad_requests_get_a_json_error(running: Running) -> None:
    import urllib.error
    import urllib.request

    base = running.console.split("#")[0].rstrip("/")
    cases = [
        ("GET", "/api/pipelines/shop/payments/node?id=algo:nope", None, 404, "no step 'algo:nope'"),
        ("POST", "/api/pipelines/shop/payments/send", b"{not json", 400, "not JSON"),
        ("POST", "/api/pipelines/shop/payments/send", b'{"path": "nope", "body": "x"}', 404, "no endpoint path"),
        ("POST", "/api/pipelines/shop/payments/replay", b'{"node": "hook:receipts"}', 400, "only an algo"),
        ("GET", "/api/pipelines/a/b/graph", None, 404, "no pipeline 'a/b'"),
    ]
    for method, path, body, status, said in cases:
        request = urllib.request.Request(base + path, data=body, method=method)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == status, path
        assert said in json.loads(caught.value.read())["error"], path


def test_send_a_test_message_from_the_panel(page: Any, running: Running) -> None:
    page.goto(running.console)
    page.click(node("endpoint:charges"))
    page.fill("#send-body", json.dumps({"id": "from-the-console", "amount": 7}))
    page.click("#send-button")
    page.wait_for_selector('#send-result:text("accepted")')
    trace = json.loads(page.inner_text("#send-result").split("accepted: ", 1)[1])["traceID"]
    wait_for(
        lambda: any(d.get("traceID") == trace for d in running.receiver.deliveries()),
        timeout=60,
        what="the console's test message at the webhook",
    )


def test_a_stopped_algo_shows_as_down(page: Any, running: Running) -> None:
    """The algo's runner stopped (SIGSTOP: it neither works nor answers): the step turns red with the reason, the
    page says which component does not answer, and it comes back when continued."""
    detail = running.api("/api/pipelines/shop/payments/node?id=" + ALGO.replace("[", "%5B").replace("]", "%5D"))
    (runner,) = [p for p in detail["processes"] if p["name"].startswith("runner")]
    page.goto(running.console)
    page.wait_for_selector(f'{node(ALGO)}[data-state="up"]')
    os.kill(runner["pid"], signal.SIGSTOP)
    try:
        page.wait_for_selector(f'{node(ALGO)}[data-state="down"]')
        assert "runner shop/charge:1[1]" in (page.get_attribute(node(ALGO), "data-reason") or "")
        page.wait_for_selector('#problems:has-text("did not answer")')
        assert page.locator(f'{node("hook:receipts")}[data-state="up"]').count() == 1
        page.screenshot(path=str(Path(__file__).parent / "artifacts" / "a_stopped_algo_while_down.png"))
    finally:
        os.kill(runner["pid"], signal.SIGCONT)
    page.wait_for_selector(f'{node(ALGO)}[data-state="up"]', timeout=60_000)
