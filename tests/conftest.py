"""Settings for the whole suite, and the fixtures shared by several test folders.

Fixtures shared by several folders live in tests/support, never in a conftest module imported by another folder.
The test bed's servers (session-scoped) are the plugin tests.support.testbed_fixtures, registered below. The
browser's fixtures (tests.support.browser_fixtures) are package-scoped, and pytest scopes a fixture to a package
only when that package's conftest declares it (a plugin's would live for the whole session), so the conftest of
each package that drives a browser takes them from there.

Hypothesis explores new examples on developer machines (and remembers failures in .hypothesis/); under CI it
is derandomized, so a CI run is reproducible and a red CI means the same thing when re-run.
"""

from __future__ import annotations

import os

from hypothesis import settings

pytest_plugins = ["tests.support.testbed_fixtures"]

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
