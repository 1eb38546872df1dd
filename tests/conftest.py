"""Settings for the whole suite.

Hypothesis explores new examples on developer machines (and remembers failures in .hypothesis/); under CI it
is derandomized, so a CI run is reproducible and a red CI means the same thing when re-run.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
