"""The fixtures of the console's browser tests, `browser` and `page`, taken by the conftest of each package that
drives a browser (tests/browser, tests/integration/console): Playwright driving Debian's Chromium (headless, by its
executable path; Playwright downloads no browser here), against `algorun run` of an example on the embedded data
plane.

They are not a plugin of the whole suite: `browser` is package-scoped, and pytest ends a package-scoped fixture
with its package only when the package's conftest declares it. One from a plugin lives for the session, and
every asyncio test after the browser tests would find Playwright's event loop still running.

Each test saves a screenshot of its page under tests/browser/artifacts/ (ignored by git), failed or not.
Chromium comes from `make chromium` (part of `make test`); without it the tests skip, and fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.support.paths import TESTS

ARTIFACTS = TESTS / "browser" / "artifacts"


def chromium_path() -> str | None:
    return os.environ.get("ALGORUN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """Chromium, for the tests of one package (each package that asks starts its own, stopped when it ends).
    Playwright's sync API runs an event loop in this thread until it stops: held for the whole session, every
    asyncio test after the package would find a loop already running ("cannot be called from a running event
    loop")."""
    found = chromium_path()
    if found is None:
        message = "chromium is not installed: `make chromium` installs Debian's package"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=found, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh page; its screenshot is saved as `artifacts/<test name>.png` when the test ends."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    try:
        yield opened
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        name = request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
        try:
            opened.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        finally:
            context.close()
