"""The browser fixtures of tests/browser (Playwright on Debian's chromium, a screenshot per test)."""

from tests.browser.conftest import browser, page

__all__ = ["browser", "page"]
