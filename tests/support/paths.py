"""The repository's folders the tests read, named once: every test and helper takes its paths from here, so a
folder that moves is changed in one place."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CHART = REPO / "charts" / "pipeline-operator"
IMAGES = REPO / "images"
TESTBIN = REPO / "testbin"
FRONTEND = REPO / "frontend"
DEPLOY_CRDS = REPO / "deploy" / "crds"
SRC = REPO / "src" / "algorun"
TESTS = REPO / "tests"
GOLDEN = TESTS / "golden"
FIXTURES = TESTS / "fixtures"
