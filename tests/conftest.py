"""Settings for the whole suite, and the fixtures shared by several test folders.

Shared fixtures are plugins in tests/support (`pytest_plugins` below), never conftest modules imported by
another folder: the test bed's servers (tests.support.testbed_fixtures) and the browser
(tests.support.browser_fixtures).

Hypothesis explores new examples on developer machines (and remembers failures in .hypothesis/); under CI it
is derandomized, so a CI run is reproducible and a red CI means the same thing when re-run.
"""

from __future__ import annotations

import os

from hypothesis import settings

pytest_plugins = ["tests.support.testbed_fixtures", "tests.support.browser_fixtures"]

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
