"""The real helm 3 CLI, built from its Go module (testbin/go/helm), run with an isolated home.

Each `Helm` gets its own cache/config/data directories so tests never read or write the developer's helm
repositories or plugins, and never reach the network unless a test asks for it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Helm:
    """Where the helm binary is and the isolated home it runs with."""

    binary: Path
    home: Path

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        else:
            env.pop("KUBECONFIG", None)
        return env

    def run(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `helm ARGS...`; with check=True a non-zero exit raises, showing helm's output."""
        proc = subprocess.run(
            [str(self.binary), *args],
            env=self.env(kubeconfig),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc
