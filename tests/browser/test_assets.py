"""The built front end committed in the package is the one its sources build (a source changed without
`make console-assets` fails here), and it is what the wheel ships."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from algorun.console.server import STATIC
from tests.support.paths import FRONTEND


def test_committed_build_matches_the_sources(tmp_path: Path) -> None:
    if shutil.which("node") is None or not (FRONTEND / "node_modules" / "@dagrejs" / "dagre").is_dir():
        message = "node and frontend/node_modules are needed: `make console-assets` installs them"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    subprocess.run(["node", "build.mjs"], cwd=FRONTEND, env={**os.environ, "CONSOLE_OUT": str(tmp_path)}, check=True)
    built = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in STATIC.iterdir()}
    assert sorted(built) == sorted(committed)
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"src/algorun/console/static is stale ({', '.join(stale)}): run `make console-assets`"
