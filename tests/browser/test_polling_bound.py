"""The console never slows the pipeline it watches: however many pages watch and however often they ask, each
component's metrics endpoint is read at most once per the console's stated interval.

The console runs in this process over the retry-dead-letter example's plan on a real local log; the components'
/metrics pages are one real HTTP server that counts the requests to each path. Three browser pages ask for the
figures as fast as they can for a while.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.inprocess_console import Console, console_over
from tests.support.paths import EXAMPLES

pytestmark = pytest.mark.timeout(120)

WATCH_SECONDS = 8.0


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with console_over(EXAMPLES / "retry-dead-letter" / "pipeline.yaml", tmp_path) as watched:
        yield watched


HAMMER = """async ([path, seconds]) => {
    const until = Date.now() + seconds * 1000;
    let asked = 0;
    while (Date.now() < until) { await fetch(path); asked++; }
    return asked;
}"""


def test_metrics_endpoints_are_read_at_most_once_per_interval(page: Any, console: Console) -> None:
    page.goto(console.url)
    page.wait_for_selector("[data-node-id]")
    others = [page.context.new_page() for _ in range(2)]
    for other in others:
        other.goto(console.url)
    figures = "/api/pipelines/shop/payments/figures"
    started = time.monotonic()
    pages = [page, *others]
    for each in pages:  # started together; each page's loop runs on while the next one starts
        each.evaluate(f"() => {{ window.asked = ({HAMMER})(['{figures}', {WATCH_SECONDS}]); }}")
    asked = sum(int(each.evaluate("() => window.asked")) for each in pages)
    watched = time.monotonic() - started
    bound = int(watched / console.interval) + 2  # the pages' first load, then one per interval
    assert asked > 10 * bound, "the pages did not ask often enough to test the bound"
    assert console.hits, "the console never read the components' metrics"
    for path, hits in console.hits.items():
        assert 2 <= hits <= bound, f"{path} was read {hits} times in {watched:.1f}s (interval {console.interval}s)"
