"""The browser fixtures (tests.support.browser_fixtures), declared here so that Chromium is scoped to this package."""

from tests.support.browser_fixtures import browser, page

__all__ = ["browser", "page"]
