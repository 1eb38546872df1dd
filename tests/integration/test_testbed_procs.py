"""The test bed's processes die with the test run: a SIGKILLed pytest leaves no server or runner behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.procs import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# A stand-in for pytest: starts a long-lived child the way the helpers do, prints its pid, then waits forever.
PARENT = """
import subprocess, sys, time
from tests.support.procs import die_with_parent
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"],
    start_new_session=True,
    preexec_fn=die_with_parent if sys.argv[1] == "guarded" else None,
)
print(child.pid, flush=True)
time.sleep(120)
"""


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a killed orphan stays a zombie until init reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _orphan_of_killed_parent(mode: str) -> int:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _running(child)
    parent.kill()
    parent.wait(10)
    return child


def test_a_child_started_with_die_with_parent_is_killed_when_its_parent_is() -> None:
    child = _orphan_of_killed_parent("guarded")
    wait_for(lambda: not _running(child), timeout=10, what="the orphaned child to be killed")


def test_without_it_the_child_outlives_its_parent() -> None:
    """The control: what the guarded case prevents does happen without it (so the test above can fail)."""
    child = _orphan_of_killed_parent("unguarded")
    try:
        assert _running(child)
    finally:
        os.kill(child, signal.SIGKILL)
